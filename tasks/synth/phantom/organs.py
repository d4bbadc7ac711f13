"""Thoracic, abdominal and pelvic organs, great vessels and the pulmonary vessel trees."""

from __future__ import annotations

import numpy as np

from data_contracts import anatomy
from tasks.synth.phantom.painter import Painter
from tasks.synth.phantom.shapes import Capsule, Ellipsoid, Implicit, Paint, Profile, _cross, _interp, _rotation
from tasks.synth.phantom.tissues import LOBES, n_labels


# Diaphragm domes (reference mm above the soles): right higher than left; a breathing patient's lungs hold
# 4-6 L.
DOME_RIGHT, DOME_LEFT = 1222.0, 1206.0
CAGE_WIDTH = 1.06  # below the upper aperture, the rib cage is this much wider and deeper than the keyframes


class OrganPainter(Painter):
    # -- thorax ------------------------------------------------------------------------------------
    # Rib-cage (rib centre line) keyframes: w, half-width A, half-depth B, centre depth.
    CAGE = np.array([[1478, 28, 28, 32], [1455, 62, 52, 22], [1420, 95, 70, 12], [1370, 118, 82, 6],
                     [1300, 128, 88, 2], [1250, 131, 89, 0], [1200, 129, 88, 0], [1150, 124, 85, 0],
                     [1100, 115, 80, 0]], float)
    CAGE[CAGE[:, 0] < 1440, 1:3] *= CAGE_WIDTH

    def cage(self) -> Profile:
        c = self.CAGE
        return Profile(c[:, 0] * self.sv, c[:, 1] * self.sl, c[:, 2] * self.sl, c[:, 3] * self.sl)

    def diaphragm(self, U, V):
        """w of the diaphragm surface under (u, v): two domes, right higher, recesses low at the back."""
        sl, sv = self.sl, self.sv
        right = DOME_RIGHT * sv - 95 * sv * (((U + 60 * sl) / (115 * sl)) ** 2 + ((V - 0 * sl) / (105 * sl)) ** 2)
        left = DOME_LEFT * sv - 95 * sv * (((U - 62 * sl) / (115 * sl)) ** 2 + ((V - 5 * sl) / (105 * sl)) ** 2)
        return np.maximum(right, left)

    def heart_frame(self):
        d = np.array([0.55, -0.45, -0.70])
        d /= np.linalg.norm(d)
        e1 = np.cross(d, [0, 0, 1.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(d, e1)
        return np.stack([d, e1, e2], axis=1)  # columns: long axis, two short axes

    def thorax(self):
        cage = self.cage()
        inset = 7.0 * self.sl
        cavity_prof = Profile(cage.w, cage.a - inset, cage.b - inset, cage.cv)
        apex = 1480 * self.sv
        hs = self.pt.organ_scale.get("heart", 1.0)
        rot = self.heart_frame()
        heart_c = self.point(24, -22, 1284 + self.organ_dw("heart"))
        heart_ax = self.axes(66, 52, 46) * hs
        heart = Ellipsoid(heart_c, heart_ax, rot)
        heart_pad = Ellipsoid(heart_c, heart_ax + 7 * self.sl, rot)
        levels = self.levels
        sv, sl = self.sv, self.sl
        med_w = np.array([1480, 1420, 1380, 1340, 1280, 1200]) * sv
        med_half = np.array([20, 27, 32, 30, 26, 24]) * sl
        med_cu = np.array([0, 2, 4, 4, 4, 4]) * sl
        sp_w = np.array([lv.mid for lv in levels]) * sv
        sp_v = np.array([lv.v - lv.av for lv in levels]) * sl
        sp_au = np.array([lv.au + 7 for lv in levels]) * sl

        def cavity(U, V, W, rmin):
            a, b, cu, cv = cavity_prof.at(W)
            inside = ((U / a) ** 2 + ((V - cv) / b) ** 2 <= 1.0) & (W < apex)
            return inside & (W > self.diaphragm(U, V))

        def mediastinum(U, V, W):
            half = _interp(W, med_w, med_half)
            cu = _interp(W, med_w, med_cu)
            spine_front = _interp(W, sp_w, sp_v)
            band = (np.abs(U - cu) < half) & (V < spine_front + 8 * sl)
            spine_au = _interp(W, sp_w, sp_au)
            paravertebral = (np.abs(U) < spine_au) & (V >= spine_front - 2 * sl)
            return band | paravertebral | heart_pad.inside(U, V, W, 0.0)

        lo = np.array([-140 * sl, -100 * sl, 1120 * sv])
        hi = np.array([140 * sl, 100 * sl, apex])
        self.add(Implicit(lo, hi, cavity), "mediastinal_fat")
        pleura_t = 4.0 * sl
        # Fissures: oblique (both lungs) high at the back, low at the front; horizontal (right).
        w_obl = lambda V: (1305 + 0.75 * V / sl) * sv  # noqa: E731
        w_hor = 1318 * sv
        lab = self.lab

        pleura_lut = np.array([lab["pleura_right"], lab["pleura_left"]], np.uint16)
        lobe_lut = np.array([lab[n] for n in ("lung_lower_lobe_right", "lung_middle_lobe_right",
                                              "lung_upper_lobe_right", "lung_lower_lobe_left",
                                              "lung_upper_lobe_left")], np.uint16)

        def lungs(U, V, W, rmin):
            """Pleural shell and lobes: labels over the thoracic cavity outside the mediastinum."""
            a, b, cu, cv = cavity_prof.at(W)
            t = max(pleura_t, rmin * 1.1)
            dia = self.diaphragm(U, V)
            rel = (U / a) ** 2 + ((V - cv) / b) ** 2
            lung = (rel <= 1.0) & (W < apex) & (W > dia) & ~mediastinum(U, V, W)
            inner = (((U / (a - t)) ** 2 + ((V - cv) / (b - t)) ** 2) <= 1.0) & (W < apex - t * 0.5) & (
                W > dia + t * 0.3)
            left = U >= 0
            upper = W > w_obl(V)
            lobe = np.where(left, 3 + upper, np.where(upper, 1 + (W > w_hor), 0))
            out = np.where(inner, lobe_lut[lobe], pleura_lut[left.astype(np.intp)])
            return np.where(lung, out, 0).astype(np.uint16)

        lung_names = ["pleura_right", "pleura_left"] + [n for n in anatomy.structures() if n.startswith("lung_")]
        self.add(Implicit(lo, hi, lungs), "pleura_right", allowed=["mediastinal_fat"], labels=lung_names)

        # Heart on the diaphragm: blood pool, left-ventricular wall, LV cavity.
        above = lambda U, V, W, r: W > self.diaphragm(U, V) + 3 * sv  # noqa: E731
        self.add(Implicit(*heart.bounds(), lambda U, V, W, r: heart.inside(U, V, W, r) & above(U, V, W, r)),
                 "heart_blood")
        lv_c = heart_c + rot[:, 0] * 14 * sl + rot[:, 1] * 16 * sl
        lv_wall = Ellipsoid(lv_c, np.array([50, 30, 30]) * sl * hs, rot)
        lv_cav = Ellipsoid(lv_c + rot[:, 0] * -4 * sl, np.array([36, 18, 18]) * sl * hs, rot)
        self.add(Implicit(*lv_wall.bounds(), lambda U, V, W, r: lv_wall.inside(U, V, W, r) & heart.inside(
            U, V, W, r) & above(U, V, W, r)), "heart")
        self.add(lv_cav, "heart_blood")
        # Great vessels.
        self.tube("aorta", [(-6, -22, 1300), (-6, -26, 1368), (4, -12, 1394), (20, 14, 1386), (26, 34, 1360),
                            (25, 38, 1300), (18, 38, 1220), (8, 30, 1175), (4, 20, 1110), (3, 17, 1045)],
                  [14, 14, 12.5, 12, 11.5, 11.5, 11, 10.5, 10, 9.5], thin=True)
        self.tube("vessel", [(-24, -20, 1400), (-20, -12, 1320)], 9)  # SVC
        self.tube("vessel", [(10, -44, 1312), (10, -20, 1352), (-38, -2, 1346)], [12, 11, 8])  # pulmonary
        self.tube("vessel", [(10, -20, 1350), (40, 4, 1344)], [10, 8])
        # Breasts over the pectoral muscles: centred on the skin line in front of the nipple line.
        fat = self.fat_profile(self.trunk_profile())
        for side in ("left", "right"):
            s = 1 if side == "left" else -1
            w = (1322 if self.female else 1345) * sv
            a_f, b_f, _, cv_f = (float(x) for x in fat.at(np.float64(w)))
            u = 88 * sl
            front = (cv_f - b_f * np.sqrt(max(1 - (u / a_f) ** 2, 0.05))) / sl
            if self.female:
                size = 1.0 + 0.6 * (self.pt.girth - 0.85)
                self.ellipsoid(f"breast_{side}", (s * 88, front - 12 * size, 1322), (58 * size, 40 * size, 55 * size),
                               allowed=["outside", "body_fat", "muscle"])
                self.ellipsoid("body_fat", (s * 88, front - 30 * size, 1322), (45 * size, 24 * size, 42 * size),
                               allowed=[f"breast_{side}"])
            else:
                self.ellipsoid(f"breast_{side}", (s * 88, front + 5, 1345), (22, 6, 20), thin=True,
                               allowed=["body_fat", "muscle"])

    # -- abdomen -----------------------------------------------------------------------------------
    def abdomen(self):
        sv, sl = self.sv, self.sl
        lean = self.trunk_profile()
        cav = Profile(lean.w, lean.a - 16 * sl, lean.b - 17 * sl, lean.cv - 6 * sl)
        sp_w = np.array([lv.mid for lv in self.levels]) * sv
        sp_v = np.array([lv.v - lv.av for lv in self.levels]) * sl

        def cavity(U, V, W, rmin):
            a, b, cu, cv = cav.at(W)
            spine_front = _interp(W, sp_w, sp_v)
            ok = (U / a) ** 2 + ((V - cv) / b) ** 2 <= 1.0
            ok &= ~((np.abs(U) < 48 * sl) & (V > spine_front - 4 * sl))
            return ok & (W < self.diaphragm(U, V) - 3 * sv) & (W > 870 * sv)

        self.add(Implicit(np.array([-150 * sl, -120 * sl, 860 * sv]), np.array([150 * sl, 110 * sl, 1260 * sv]),
                          cavity), "body_fat")
        below = lambda U, V: self.diaphragm(U, V) - 4 * sv  # noqa: E731

        # Psoas muscles beside the lumbar spine.
        for s in (1, -1):
            self.tube("muscle", [(s * 24, 38, 1160), (s * 42, 36, 1040), (s * 58, 10, 950), (s * 70, -10, 890)],
                      [9, 22, 20, 14])
        # Small-bowel loops: a persistent random walk in the lower abdomen.
        self.small_bowel()

        # Liver under the right dome, with Couinaud-like segments cut by planes.
        ls = self.pt.organ_scale.get("liver", 1.0)
        dl = self.organ_dw("liver")
        e1 = Ellipsoid(self.point(-48, 4, 1154 + dl), self.axes(98, 88, 82, ls), _rotation("w", -10))
        e2 = Ellipsoid(self.point(18, -38, 1174 + dl), self.axes(68, 40, 36, ls), _rotation("w", -15))
        caudate = Ellipsoid(self.point(-8, 30, 1154 + dl), self.axes(16, 14, 26))
        lab = self.lab
        w_p = (1172 + dl) * sv

        def liver(U, V, W, rmin):
            """Couinaud-like segments inside the liver envelope (labels; 0 outside)."""
            inside = (e1.inside(U, V, W, rmin) | e2.inside(U, V, W, rmin)) & (W < below(U, V))
            inside &= ~((U > -14 * sl) & (V > -6 * sl)) | caudate.inside(U, V, W, 0.0)  # aorta, celiac axis
            falciform = U > (8 + 0.25 * V / sl) * sl
            cantlie = U > (-20 + 0.12 * V / sl) * sl
            # right hepatic vein plane: through the IVC (-20, 30) towards the lateral edge (-130, -25)
            posterior = (V - 30 * sl) * (-110) - (U + 20 * sl) * (-55) < 0
            sup = W > w_p
            seg = np.where(falciform, np.where(sup, 2, 3),
                           np.where(cantlie, 4, np.where(posterior, np.where(sup, 7, 6), np.where(sup, 8, 5))))
            seg = np.where(caudate.inside(U, V, W, 0.0), 1, seg)
            table = np.array([0] + [lab[f"liver_segment_{i}"] for i in range(1, 9)], np.uint16)
            return np.where(inside, table[seg], 0).astype(np.uint16)

        lo = np.minimum(e1.bounds()[0], e2.bounds()[0])
        hi = np.maximum(e1.bounds()[1], e2.bounds()[1])
        self.add(Implicit(lo, hi, liver), "liver_segment_5", labels=[f"liver_segment_{i}" for i in range(1, 9)])
        self.ellipsoid("gallbladder", (-42, -50, 1118 + dl), (14, 14, 32), _rotation("u", 25))
        self.tube("vessel", [(-26, 18, 1000), (-26, 20, 1100), (-22, 28, 1180), (-18, 4, 1252)], [11, 12, 12, 13])

        # Spleen, kidneys, adrenals.
        ss = self.pt.organ_scale.get("spleen", 1.0)
        sp = Ellipsoid(self.point(92, 48, 1160 + self.organ_dw("spleen")), self.axes(30, 50, 56, ss), _rotation("w", 35))
        self.add(Implicit(*sp.bounds(), lambda U, V, W, r: sp.inside(U, V, W, r) & (W < below(U, V))), "spleen")
        ks = self.pt.organ_scale.get("kidney", 1.0)
        dk = self.organ_dw("kidney")
        for side, w_c in (("left", 1136 + dk), ("right", 1120 + dk)):
            s = 1 if side == "left" else -1
            rot = _rotation("w", s * 30) @ _rotation("v", s * -12)
            self.ellipsoid(f"kidney_{side}", (s * 70, 52, w_c), (27, 22, 52), rot, k=ks)
            self.ellipsoid(f"kidney_pelvis_{side}", (s * 56, 45, w_c - 4), (10, 8, 18), rot)
        near = ["body_fat", "muscle"] + [f"liver_segment_{i}" for i in range(1, 9)] + ["spleen"]
        self.ellipsoid("adrenal_left", (40, 36, 1186 + dk), (5, 13, 19), _rotation("w", 30), thin=True, allowed=near)
        self.ellipsoid("adrenal_right", (-36, 40, 1192 + dk), (5, 13, 19), _rotation("w", -30), thin=True, allowed=near)

        # Stomach: wall, content, a gas cap anteriorly (supine).
        ds = self.organ_dw("stomach")
        st_pts = [(62, 12, 1192 + ds), (58, -22, 1158 + ds), (22, -52, 1130 + ds * 0.5), (-14, -36, 1124)]
        st_r = [36, 32, 22, 13]
        self.tube("stomach", st_pts, st_r)
        self.tube("stomach_content", st_pts, [r - 5 for r in st_r])
        gas_v = -20 * sl
        stc = [Capsule(self.point(*st_pts[i]), self.point(*st_pts[i + 1]), (st_r[i] - 5) * sl, (st_r[i + 1] - 5) * sl)
               for i in range(len(st_pts) - 1)]
        for c in stc:
            self.add(Implicit(*c.bounds(), lambda U, V, W, r, c=c: c.inside(U, V, W, r) & (V < gas_v)),
                     "stomach_gas")
        # Duodenum (small bowel) and pancreas.
        self.tube("duodenum", [(-14, -36, 1124), (-38, -14, 1118), (-42, 8, 1092), (-20, 10, 1072),
                               (20, 2, 1082)], 12)
        self.tube("pancreas", [(-26, -8, 1116), (-2, -22, 1130), (36, -10, 1142), (78, 32, 1160)],
                  [15, 11, 11, 9], thin=True)

        # Colon frame: cecum, ascending, transverse, descending, sigmoid, rectum; some segments gas-filled.
        rng = np.random.default_rng(self.pt.bowel_seed + 1)
        col = [(-80, -8, 985), (-90, 14, 1030), (-88, 14, 1108), (-72, -22, 1128), (-28, -62, 1078),
               (30, -62, 1082), (84, -2, 1152), (94, 22, 1100), (90, 22, 1010), (58, -8, 962), (18, -12, 950),
               (2, 40, 925), (0, 46, 880), (0, 52, 848)]
        rad = [25, 24, 23, 21, 20, 20, 19, 18, 18, 16, 16, 18, 17, 12]
        self.tube("colon", col, rad)
        for i in range(len(col) - 1):
            if rng.random() < (0.8 if 3 <= i <= 6 else 0.35):
                c = Capsule(self.point(*col[i]), self.point(*col[i + 1]), (rad[i] - 4) * sl, (rad[i + 1] - 4) * sl)
                self.add(c, "colon_gas")
        # Abdominal vessels to the legs (iliac, femoral).
        for s in (1, -1):
            self.tube("vessel", [(3, 17, 1045), (s * 38, 16, 995), (s * 56, -8, 955), (s * 72, -35, 905),
                                 (s * 82, -40, 870), (s * 88, -25, 800)], [8, 7, 6.5, 6, 6, 6])

    def small_bowel(self):
        rng = np.random.default_rng(self.pt.bowel_seed)
        sl = self.sl
        lo, hi = np.array([-85.0, -75.0, 955.0]), np.array([85.0, 5.0, 1090.0])
        p = np.array([rng.uniform(-50, 50), -30.0, rng.uniform(980, 1060)])
        d = rng.normal(size=3)
        d[2] *= 0.5
        pts = [p.copy()]
        for _ in range(70):
            d = 0.75 * d / np.linalg.norm(d) + 0.55 * rng.normal(size=3)
            d /= np.linalg.norm(d)
            q = p + 18.0 * d
            bounce = (q < lo) | (q > hi)
            d[bounce] *= -1
            p = np.clip(p + 18.0 * d, lo, hi)
            pts.append(p.copy())
        self.tube("small_bowel", [tuple(x) for x in pts], 12.5, allowed=["body_fat"])
        for i in range(0, len(pts) - 1, 9):
            self.add(Capsule(self.point(*pts[i]), self.point(*pts[i + 1]), 6.5 * sl, 6.5 * sl), "bowel_gas",
                     allowed=["small_bowel"])

    def pelvis_organs(self):
        bs = self.pt.organ_scale.get("bladder", 1.0) ** (1 / 3)
        self.ellipsoid("bladder", (0, -46, 902 + 8 * bs + self.organ_dw("bladder")), (44 * bs, 34 * bs, 36 * bs))
        if self.female:
            self.ellipsoid("uterus", (0, 2, 935), (30, 22, 40), _rotation("u", -35))
        else:
            self.ellipsoid("prostate", (0, -30, 862), (20, 16, 17), thin=True)


    def lung_vessels(self):
        """Pulmonary vessel trees from each hilum, painted only over lung (as the vessel of that lobe)."""
        rng = np.random.default_rng(self.pt.bowel_seed + 11)
        remap = np.zeros(n_labels(), np.uint16)
        for lobe in LOBES:
            remap[self.lab[lobe]] = self.lab[f"vessel_{lobe}"]
        sl = self.sl
        for s in (1, -1):
            root = np.array([s * 50.0, 6.0, 1326.0])
            primaries = [(s * 0.35, -0.15, 0.92), (s * 0.55, -0.75, -0.1), (s * 0.3, 0.5, -0.8),
                         (s * 0.85, 0.05, -0.5), (s * 0.6, 0.45, 0.35)]
            stack = [(root, np.array(d) / np.linalg.norm(d), 42.0, 4.5, 0) for d in primaries]
            while stack:
                p0, d, length, r, depth = stack.pop()
                p1 = p0 + d * length
                self.ops.append(Paint(Capsule(self.point(*p0), self.point(*p1), r * sl, r * 0.8 * sl), 0, name="vessel",
                                      remap=remap))
                if depth < 5:
                    for sign in (1, -1):
                        axis = _cross(d, rng.normal(size=3))
                        axis /= np.linalg.norm(axis)
                        ang = np.deg2rad(rng.uniform(22, 38)) * sign
                        # Rodrigues rotation of d about the axis (perpendicular to d)
                        nd = d * np.cos(ang) + _cross(axis, d) * np.sin(ang)
                        stack.append((p1, nd, length * rng.uniform(0.68, 0.82), r * 0.72, depth + 1))

