"""The body outline: trunk with its subcutaneous fat, limbs, head and neck."""

from __future__ import annotations

import numpy as np

from tasks.synth.phantom.painter import ARMS_UP, Painter
from tasks.synth.phantom.shapes import Ellipsoid, Implicit, Profile, Slab


class BodyPainter(Painter):
    # Trunk lean (muscle) outline keyframes: w, half-width, half-depth, centre depth.
    TRUNK = np.array([
        [1575, 52, 57, 5], [1500, 53, 58, 5], [1462, 60, 60, 6], [1445, 105, 80, 6], [1425, 150, 95, 4],
        [1395, 158, 100, 2], [1350, 150, 105, 0], [1250, 146, 108, 0], [1170, 138, 107, 0], [1100, 126, 103, 0],
        [1050, 124, 98, 2], [1010, 138, 99, 4], [940, 154, 99, 8], [890, 156, 96, 10], [862, 132, 92, 12],
        [835, 70, 72, 14],
    ], float)

    def trunk_profile(self) -> Profile:
        t = self.TRUNK
        hips = np.where(t[:, 0] < 1060, 1.06 if self.female else 1.0, 1.0)
        return Profile(t[:, 0] * self.sv, t[:, 1] * self.sl * hips, t[:, 2] * self.sl, t[:, 3] * self.sl)

    def fat_profile(self, lean: Profile) -> Profile:
        """Subcutaneous fat over the lean outline: thin on the neck, thick over the belly and hips."""
        w = lean.w / self.sv
        f = self.fat_mm
        region = np.interp(w, [850, 960, 1060, 1150, 1300, 1440, 1480, 1575],
                           [1.4, 1.5, 1.7, 1.3, 1.0, 0.9, 0.55, 0.45])
        if self.female:
            region = region * np.interp(w, [850, 1000, 1100], [1.35, 1.25, 1.0])
        lateral = f * region
        front = f * region * np.interp(w, [850, 1000, 1100, 1200, 1300], [1.2, 1.6, 1.5, 1.1, 1.0])
        back = f * region * 0.8
        return lean.grown(lateral, front, back)

    def body_outline(self):
        lean = self.trunk_profile()
        w_lo, w_hi = 830 * self.sv, 1575 * self.sv
        self.add(Slab(self.fat_profile(lean), w_lo, w_hi, flat_back=0.9), "body_fat")
        # Head and face (skin), arms and legs with their fat.
        self.limbs(fat=True)
        self.ellipsoid("body_fat", (0, 8, 1650), (79, 99, 104))
        self.ellipsoid("body_fat", (0, -30, 1578), (63, 68, 66))
        self.add(Slab(lean, w_lo, w_hi, flat_back=0.9), "muscle")
        self.limbs(fat=False)
        self.ellipsoid("muscle", (0, 8, 1650), (75, 95, 100))
        self.ellipsoid("muscle", (0, -30, 1578), (60, 65, 62))

    def limb(self, name: str, pts, radii):
        """A limb: a tube whose circular cross-section follows a polyline (nearly vertical), capped."""
        pts = np.array([self.point(*p) for p in pts])
        r = np.asarray(radii, float) * self.sl
        prof = Profile(pts[:, 2], r, r, pts[:, 1], pts[:, 0])
        self.add(Slab(prof, float(pts[:, 2].min()), float(pts[:, 2].max())), name)

    def limbs(self, fat: bool):
        f = self.fat_mm * (0.8 if not self.female else 1.0) / self.sl if fat else 0.0
        thigh = 1.3 if (fat and self.female) else 1.0
        name = "body_fat" if fat else "muscle"
        for side in ("left", "right"):
            s = 1 if side == "left" else -1
            # arm: shoulder -> elbow -> wrist, then the hand
            if self.pt.arms_up:  # raised, elbows beside the head, forearms crossed above it
                (u0, v0, w0), (u1, v1, w1), (u2, v2, w2) = ARMS_UP
                self.tube(name, [(s * u0, v0, w0), (s * u1, v1, w1), (s * u2, v2, w2)],
                          [44 + f, 36 + f, 26 + f * 0.6])
                self.ellipsoid(name, (s * (u2 - 45), v2, w2 + 12), (48, 22 + f * 0.3, 22))
            else:
                self.limb(name, [(s * 178, 14, 1412), (s * 196, 20, 1120), (s * 203, 8, 870)],
                          [44 + f, 36 + f, 26 + f * 0.6])
            self.ellipsoid(name, (s * 178, 14, 1412), (44 + f, 44 + f, 30 + f))
            if not self.pt.arms_up:
                self.ellipsoid(name, (s * 204, 0, 795), (20 + f * 0.3, 42, 78))
            # leg: hip -> knee -> ankle, then the foot (pointing anterior, supine)
            self.limb(name, [(s * 88, 6, 905), (s * 91, 5, 720), (s * 94, 4, 520), (s * 95, 10, 380),
                             (s * 95, 10, 250), (s * 95, 8, 80)],
                      [82 + f * 1.1 * thigh, 72 + f * thigh, 50 + f * 0.8, 55 + f * 0.8, 44 + f * 0.6,
                       30 + f * 0.3])
            self.ellipsoid(name, (s * 95, 8, 80), (30 + f * 0.3, 30 + f * 0.3, 20))
            self.ellipsoid(name, (s * 95, -45, 48), (38 + f * 0.3, 110, 40 + f * 0.2))

    # -- head --------------------------------------------------------------------------------------
    def head(self):
        skull_base = 1590.0
        sb = skull_base * self.sv
        outer = Ellipsoid(self.point(0, 8, 1650), self.axes(70, 90, 95))
        inner = Ellipsoid(self.point(0, 8, 1650), self.axes(63, 83, 88))

        def skull(U, V, W, rmin):
            return outer.inside(U, V, W, rmin) & ~inner.inside(U, V, W, rmin) & (W > sb)

        lo, hi = outer.bounds()
        self.add(Implicit(lo, hi, skull), "skull")
        self.ellipsoid("skull", (0, 10, skull_base + 2), (60, 78, 9))  # skull base plate
        brain_in = Ellipsoid(self.point(0, 8, 1652), self.axes(62, 82, 86))
        self.add(Implicit(*brain_in.bounds(), lambda U, V, W, r: brain_in.inside(U, V, W, r) & (W > sb + 10)),
                 "brain")
        self.ellipsoid("brain", (0, 45, 1612), (45, 32, 20))  # cerebellum
        self.tube("brain", [(0, 25, 1612), (0, 28, 1588)], 11)  # brainstem
        for s in (1, -1):
            self.ellipsoid("eye", (s * 32, -68, 1625), (12, 12, 12))
            self.ellipsoid("sinus_air", (s * 27, -48, 1585), (14, 18, 17))
            self.tube("mandible", [(s * 48, -2, 1565), (s * 47, -12, 1525), (s * 25, -70, 1512), (0, -82, 1510)],
                      7, thin=True)
        self.ellipsoid("sinus_air", (0, -62, 1592), (9, 26, 22))  # nasal cavity
        self.ellipsoid("nasopharynx", (0, -30, 1572), (20, 12, 12), thin=True)
        self.ellipsoid("nasopharynx_air", (0, -34, 1574), (9, 5, 8))
        self.ellipsoid("tonsil", (0, -22, 1548), (16, 9, 10))
        self.tube("airway", [(0, -34, 1566), (0, -22, 1545), (0, -25, 1515), (0, -28, 1490)], [6, 7, 7, 8])
        for side in ("left", "right"):
            s = 1 if side == "left" else -1
            self.ellipsoid(f"parotid_{side}", (s * 55, 18, 1562), (12, 16, 22), thin=True)
            self.ellipsoid(f"submandibular_{side}", (s * 33, -28, 1516), (11, 11, 9), thin=True)
            self.ellipsoid("lacrimal", (s * 44, -58, 1640), (11, 8, 7), thin=True, allowed=["body_fat", "muscle"])

    def brown_fat(self):
        """Activated brown fat: cervical, supraclavicular, axillary and paravertebral fat (if the patient has it)."""
        if not self.pt.brown_fat:
            return
        fat = ["body_fat", "mediastinal_fat"]
        for s in (1, -1):
            self.ellipsoid("brown_fat", (s * 45, 10, 1500), (22, 26, 32), allowed=fat)
            self.ellipsoid("brown_fat", (s * 68, 0, 1450), (38, 32, 26), allowed=fat)
            self.ellipsoid("brown_fat", (s * 125, 10, 1390), (26, 26, 26), allowed=fat)
            self.ellipsoid("brown_fat", (s * 34, 62, 1320), (16, 16, 90), allowed=fat)

    # -- neck --------------------------------------------------------------------------------------
    def neck(self):
        self.tube("airway_wall", [(0, -28, 1492), (0, -24, 1420), (0, -8, 1368)], 11)
        self.tube("trachea", [(0, -28, 1492), (0, -24, 1420), (0, -8, 1368)], 8.5, thin=True)
        for s in (1, -1):
            self.tube("airway_wall", [(0, -8, 1368), (s * 34, -2, 1348), (s * 56, 4, 1322)], 7.5)
            self.tube("trachea", [(0, -8, 1368), (s * 34, -2, 1348), (s * 56, 4, 1322)], 5.5)
        self.tube("esophagus", [(0, -10, 1495), (2, -4, 1430), (6, 22, 1350), (10, 28, 1260), (20, 20, 1200),
                                (38, 5, 1178)], 7, thin=True)
        for s in (1, -1):
            self.ellipsoid("thyroid", (s * 17, -27, 1462), (8, 9, 20), thin=True)
            # carotid artery and jugular vein
            self.tube("vessel", [(s * 22, -12, 1440), (s * 26, -8, 1555)], 4)
            self.tube("vessel", [(s * 32, -6, 1440), (s * 38, 0, 1555)], 6)
        self.ellipsoid("thyroid", (0, -37, 1455), (10, 4, 6))

