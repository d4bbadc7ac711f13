"""The skeleton: spine (vertebrae, discs, canal, cord, sacrum), ribs and shoulder girdle, pelvis and legs."""

from __future__ import annotations

import numpy as np

from tasks.synth.phantom.painter import ARMS_UP, SPINE_LEVELS, Painter
from tasks.synth.phantom.shapes import Cylinder, Implicit, _rotation


class SkeletonPainter(Painter):
    # -- skeleton ----------------------------------------------------------------------------------
    def spine(self):
        sl, sv = self.sl, self.sv
        for i, lv in enumerate(self.levels):
            name = f"vertebra_{lv.name}"
            f = i / 23.0
            h = lv.top - lv.bottom
            # disc below the body
            self.add(Cylinder(self.point(0, lv.v, 0)[:2], np.array([lv.au, lv.av]) * sl * 0.96,
                              lv.disc_bottom * sv, lv.bottom * sv, thin=True), "intervertebral_disc")
            self.add(Cylinder(self.point(0, lv.v, 0)[:2], np.array([lv.au, lv.av]) * sl, lv.bottom * sv, lv.top * sv,
                              thin=True), name)
            # posterior arch: a ring around the canal, spinous and transverse processes
            t = 5.0 + 2.0 * f
            wc = lv.top - 0.45 * h
            ring = Cylinder(self.point(0, lv.canal_v, 0)[:2], np.array([lv.canal_r + t] * 2) * sl, (wc - 0.35 * h) * sv,
                            (wc + 0.35 * h) * sv)
            self.add(ring, name)
            sp_len = 18 + 18 * np.sin(np.pi * min(f * 1.3, 1.0)) + 6 * f
            back = lv.canal_v + lv.canal_r + t - 2
            self.tube(name, [(0, back, wc), (0, back + sp_len, wc - 0.4 * sp_len)], [4.5 + 1.5 * f, 3.5 + 1.5 * f],
                      thin=True)
            tp = 16 + 16 * f
            for s in (1, -1):
                self.tube(name, [(s * (lv.canal_r + 2), lv.canal_v - 2, wc), (s * (lv.canal_r + t + tp),
                                                                              lv.canal_v + 6, wc + 1)],
                          [5.0, 4.0], thin=True)
        # Canal and cord along the spine.
        canal = [(0, self.levels[0].canal_v, 1590)] + [(0, lv.canal_v, lv.mid) for lv in self.levels]
        canal += [(0, self.levels[-1].canal_v + 10, 960)]
        radii = [9.5] + [lv.canal_r for lv in self.levels] + [7]
        self.tube("canal", canal, radii)
        l1 = self.level("L1").mid
        cord = [p for p in canal if p[2] >= l1]
        self.tube("spinal_cord", cord, [6 if p[2] > self.level("T1").top else 5 for p in cord], thin=True)
        self.tube("spinal_cord", [(0, 28, 1590), (0, self.levels[0].canal_v, self.levels[0].mid)], 6)
        # Sacrum and coccyx below L5.
        l5 = self.levels[-1]
        sac = [(0, l5.v + 4, 970, 42, 17, 13), (0, l5.v + 16, 947, 36, 15, 12), (0, l5.v + 28, 926, 28, 13, 11),
               (0, l5.v + 36, 907, 20, 11, 10), (0, l5.v + 40, 889, 13, 9, 9), (0, l5.v + 38, 870, 8, 7, 9)]
        for u, v, w, au, av, aw in sac:
            self.ellipsoid("sacrum", (u, v, w), (au, av, aw), _rotation("u", -25), thin=True)
        for s in (1, -1):  # sacral ala
            self.ellipsoid("sacrum", (s * 34, l5.v + 12, 962), (20, 14, 16), thin=True)

    def rib_path(self, k: int, side: str) -> tuple[list[tuple[float, float, float]], int]:
        """Centre line of rib k (reference coordinates) and the index where its cartilage starts."""
        lv = self.level(f"T{k}")
        s = 1 if side == "left" else -1
        w0 = lv.top - 0.3 * (lv.top - lv.bottom)
        tp = 16 + 16 * (SPINE_LEVELS.index(lv.name) / 23.0)
        pts = [(s * (lv.au + 3), lv.v + 2, w0), (s * (lv.canal_r + 6 + tp * 0.8), lv.canal_v + 5, w0 - 2)]
        phi_end = [2.78, 2.62, 2.6, 2.6, 2.58, 2.55, 2.5, 2.35, 2.2, 2.05, 1.7, 1.35][k - 1]
        drop = [30, 52, 66, 76, 84, 90, 94, 94, 90, 80, 62, 46][k - 1]
        c = self.CAGE
        u1 = abs(pts[1][0]) + 16
        n = 11
        w_prev = w0 - 3
        a0 = np.interp(w0, c[::-1, 0], c[::-1, 1])
        phi1 = float(np.arcsin(min(u1 / a0, 0.95)))
        for j in range(n):
            phi = phi1 + (phi_end - phi1) * j / (n - 1)
            w = w_prev - (drop * (((j + 1) / n) ** 1.25 - (j / n) ** 1.25))
            a = np.interp(w, c[::-1, 0], c[::-1, 1])
            b = np.interp(w, c[::-1, 0], c[::-1, 2])
            cv = np.interp(w, c[::-1, 0], c[::-1, 3])
            pts.append((s * a * np.sin(phi), cv + b * np.cos(phi), w))
            w_prev = w
        bone_end = len(pts)
        if k <= 7:  # costal cartilage to the sternal edge
            w_st = 1415 - (1415 - 1272) * (k - 1) / 6
            pts.append((s * 16, -94 if k > 1 else -86, w_st))
        return pts, bone_end

    def ribs_and_shoulder(self):
        for side in ("left", "right"):
            s = 1 if side == "left" else -1
            for k in range(1, 13):
                pts, bone_end = self.rib_path(k, side)
                self.tube(f"rib_{side}_{k}", pts[:bone_end], [5.5] + [5.0] * (bone_end - 1), thin=True)
                if bone_end < len(pts):
                    self.tube("cartilage", pts[bone_end - 1:], 4.5)
            # clavicle, scapula, humerus
            self.tube(f"clavicle_{side}", [(s * 22, -74, 1432), (s * 70, -74, 1442), (s * 118, -48, 1447),
                                           (s * 152, -8, 1440)], [9, 8, 7.5, 8], thin=True)
            rot = _rotation("w", s * -32)
            self.ellipsoid(f"scapula_{side}", (s * 98, 78, 1372), (42, 5, 62), rot, thin=True)
            self.ellipsoid(f"scapula_{side}", (s * 148, 32, 1408), (10, 15, 18), thin=True)  # glenoid
            self.tube(f"scapula_{side}", [(s * 66, 90, 1418), (s * 140, 62, 1436), (s * 160, 24, 1436)], 6,
                      thin=True)  # spine of scapula and acromion
            self.ellipsoid(f"humerus_{side}", (s * 172, 14, 1408), (23, 23, 24))
            if self.pt.arms_up:
                (u0, v0, w0), (u1, v1, w1), (u2, v2, w2) = ARMS_UP
                self.tube(f"humerus_cortex_{side}", [(s * 171, 16, 1432), (s * (u1 + 2), v1 - 1, w1 - 22)], 11,
                          thin=True)
                self.tube(f"humerus_marrow_{side}", [(s * 170, 17, 1455), (s * (u1 + 3), v1 - 1, w1 - 45)], 6)
                self.ellipsoid(f"humerus_{side}", (s * u1, v1, w1 - 8), (28, 14, 14))
                for dv in (-10, 10):  # forearm bones (not segmented)
                    self.tube("limb_bone", [(s * (u1 - 8), v1 + dv, w1 + 6), (s * u2, v2 + dv, w2)], 6)
            else:
                self.tube(f"humerus_cortex_{side}", [(s * 176, 16, 1392), (s * 196, 21, 1140)], 11, thin=True)
                self.tube(f"humerus_marrow_{side}", [(s * 177, 16, 1370), (s * 195, 21, 1165)], 6)
                self.ellipsoid(f"humerus_{side}", (s * 198, 20, 1128), (28, 14, 14))
                # forearm bones (not segmented)
                for du in (-10, 10):
                    self.tube("limb_bone", [(s * (198 + du), 16, 1110), (s * (204 + du), 6, 880)], 6)
        # sternum: manubrium, body, xiphoid
        self.ellipsoid("sternum", (0, -80, 1405), (26, 8, 22), thin=True)
        self.tube("sternum", [(0, -86, 1382), (0, -94, 1280)], 9, thin=True)
        self.ellipsoid("sternum", (0, -95, 1262), (8, 5, 12))

    def pelvis_and_legs(self):
        sl, sv = self.sl, self.sv
        wide = 1.06 if self.female else 1.0
        for side in ("left", "right"):
            s = (1 if side == "left" else -1) * wide
            cx = s * 48 * sl

            # Iliac wing: a curved plate (part of a widening cylinder) from the SI joint round to the ASIS.
            def wing(U, V, W, rmin, cx=cx, s=s):
                w = W / sv
                R = (50 + 0.28 * (w - 930)) * sl
                du, dv = (U - cx) * np.sign(s), V - 8 * sl
                rr = np.sqrt(du * du + dv * dv)
                ang = np.arctan2(-dv, du)  # 0 = lateral, +pi/2 = anterior
                half_t = np.maximum(4.5 * sl + 0.12 * np.maximum(960 - w, 0) * sl, rmin * 0.8)
                crest = 1036 - 20 * (np.abs(ang - 0.2)) ** 2  # highest laterally (iliac crest at L4)
                return (np.abs(rr - R) < half_t) & (ang > -1.85) & (ang < 0.7) & (w > 915) & (w < crest)

            lo = np.array([cx - 110 * sl, -110 * sl, 910 * sv])
            hi = np.array([cx + 110 * sl, 110 * sl, 1050 * sv])
            self.add(Implicit(lo, hi, wing), f"ilium_{side}")
            self.ellipsoid(f"ilium_{side}", (s * 88, -2, 928), (24, 26, 20))  # acetabular roof
            self.tube(f"pubis_{side}", [(s * 78, -22, 905), (s * 14, -66, 878)], [12, 10], thin=True)
            self.ellipsoid(f"pubis_{side}", (s * 11, -68, 868), (10, 11, 20), thin=True)
            self.tube(f"pubis_{side}", [(s * 14, -64, 858), (s * 36, -42, 845)], 8, thin=True)
            self.tube(f"ischium_{side}", [(s * 82, 6, 898), (s * 58, 20, 852)], [15, 13], thin=True)
            self.ellipsoid(f"ischium_{side}", (s * 55, 24, 846), (14, 17, 14), thin=True)
            self.tube(f"ischium_{side}", [(s * 36, -42, 845), (s * 52, 12, 843)], 8, thin=True)
            # femur: head, neck, trochanter, shaft (cortex + marrow), condyles; tibia and fibula
            sd = 1 if side == "left" else -1
            self.ellipsoid(f"femur_{side}", (s * 88, -6, 912), (24, 24, 24))
            self.tube(f"femur_{side}", [(s * 88, -6, 912), (s * 118, 2, 890)], 15)
            self.ellipsoid(f"femur_{side}", (s * 126, 8, 892), (18, 20, 24))
            self.tube(f"femur_cortex_{side}", [(s * 120, 2, 878), (sd * 98, -4, 545)], [14, 13], thin=True)
            self.tube(f"femur_marrow_{side}", [(s * 119, 2, 850), (sd * 98, -4, 580)], [8, 7.5])
            self.ellipsoid(f"femur_{side}", (sd * 96, 2, 522), (40, 30, 30))
            self.ellipsoid(f"tibia_{side}", (sd * 96, 6, 470), (38, 28, 22))
            self.tube(f"tibia_cortex_{side}", [(sd * 96, 2, 455), (sd * 96, 0, 95)], [12, 11], thin=True)
            self.tube(f"tibia_marrow_{side}", [(sd * 96, 2, 430), (sd * 96, 0, 120)], 6)
            self.ellipsoid(f"tibia_{side}", (sd * 96, 0, 78), (20, 20, 15))
            self.tube("limb_bone", [(sd * 124, 14, 455), (sd * 120, 14, 75)], 6)  # fibula
            self.ellipsoid("limb_bone", (sd * 95, -30, 42), (24, 60, 22))  # foot

