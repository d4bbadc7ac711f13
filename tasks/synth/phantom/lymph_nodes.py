"""Lymph-node stations: fat regions with one or two normal nodes in each."""

from __future__ import annotations

import numpy as np

from tasks.synth.phantom.painter import Painter
from tasks.synth.phantom.shapes import Ellipsoid


class NodePainter(Painter):
    # -- lymph-node stations -----------------------------------------------------------------------
    STATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
        # (u for the left side; mirrored for the right), v, w ; half-axes
        "ln_cervical_i": ((18, -46, 1526), (9, 8, 8)),
        "ln_cervical_ii": ((42, -6, 1530), (10, 11, 17)),
        "ln_cervical_iii": ((40, -8, 1492), (10, 11, 13)),
        "ln_cervical_iv": ((38, -8, 1462), (10, 11, 11)),
        "ln_cervical_v": ((48, 30, 1500), (9, 11, 28)),
        "ln_cervical_vi": ((9, -44, 1482), (6, 5, 13)),
        "ln_supraclavicular": ((66, -22, 1452), (12, 12, 9)),
        "ln_axillary": ((140, 0, 1362), (12, 16, 16)),
        "ln_hilar": ((58, 6, 1330), (10, 12, 14)),
        "ln_common_iliac": ((32, 4, 1005), (9, 8, 16)),
        "ln_external_iliac": ((58, -22, 950), (9, 9, 16)),
        "ln_internal_iliac": ((50, 30, 948), (9, 9, 14)),
        "ln_inguinal": ((82, -56, 866), (14, 10, 12)),
    }
    MIDLINE_STATIONS = {
        "ln_mediastinal_2r": ((-18, -14, 1405), (8, 8, 12)),
        "ln_mediastinal_2l": ((16, -14, 1405), (8, 8, 12)),
        "ln_mediastinal_4r": ((-18, -4, 1372), (8, 8, 10)),
        "ln_mediastinal_4l": ((15, -2, 1366), (7, 7, 9)),
        "ln_mediastinal_5": ((30, -10, 1366), (8, 8, 6)),
        "ln_mediastinal_6": ((10, -46, 1380), (9, 8, 12)),
        "ln_mediastinal_7": ((0, 12, 1345), (10, 9, 10)),
        "ln_mediastinal_8": ((-6, 36, 1290), (8, 8, 14)),
        "ln_retroperitoneal_paraaortic": ((24, 22, 1072), (9, 9, 40)),
        "ln_retroperitoneal_aortocaval": ((-12, 4, 1080), (6, 7, 25)),
        "ln_mesenteric": ((6, -40, 1062), (12, 10, 15)),
        "ln_porta_hepatis": ((-28, 4, 1140), (10, 10, 10)),
        "ln_celiac": ((5, 0, 1156), (9, 8, 8)),
    }
    NODE_ALLOWED = ("body_fat", "mediastinal_fat", "muscle", "small_bowel", "soft")
    NODE_ALLOWED_EXTRA = {
        "ln_hilar": ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right",
                     "lung_upper_lobe_left", "lung_lower_lobe_left", "vessel"),
        "ln_porta_hepatis": tuple(f"liver_segment_{i}" for i in range(1, 9)),
    }

    def station_geometry(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Station structure -> (centre, half-axes) in the body frame (mm)."""
        out = {}
        for key, (c, a) in self.STATIONS.items():
            for side in ("left", "right"):
                u = c[0] if side == "left" else -c[0]
                out[f"{key}_{side}"] = (self.point(u, c[1], c[2]), self.axes(*a))
        for key, (c, a) in self.MIDLINE_STATIONS.items():
            out[key] = (self.point(*c), self.axes(*a))
        return out


    def node_stations(self):
        rng = np.random.default_rng(self.pt.bowel_seed + 7)
        for s in (1, -1):  # axillary fat pockets
            self.ellipsoid("body_fat", (s * 140, 0, 1362), (20, 28, 30), allowed=["muscle"])
        for name, (c, a) in self.station_geometry().items():
            base = name.rsplit("_", 1)[0] if name.endswith(("_left", "_right")) else name
            allowed = list(self.NODE_ALLOWED) + list(self.NODE_ALLOWED_EXTRA.get(base, ()))
            self.add(Ellipsoid(c, a, None, thin=True), name, allowed=allowed)
            # one or two normal nodes (4-7 mm) inside the station
            for _ in range(int(rng.integers(1, 3))):
                off = rng.uniform(-0.4, 0.4, 3) * a
                r = rng.uniform(2.0, 3.5) * self.sl
                self.add(Ellipsoid(c + off, np.array([r, r, r * 1.5])), f"node_{name}", allowed=[name])

