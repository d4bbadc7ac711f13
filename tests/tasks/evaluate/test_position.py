import numpy as np

from tasks.evaluate.position import PositionBaseline, leave_one_group_out_top1


def test_nearest_training_lesions_vote():
    model = PositionBaseline.fit([(0.5, 0.5, 0.9), (0.5, 0.5, 0.88), (0.5, 0.5, 0.2)], ["skull", "skull", "femur_r"], k=2)
    assert model.predict([(0.5, 0.5, 0.91), (0.5, 0.5, 0.21)], top=1) == [["skull"], ["femur_r"]]
    assert PositionBaseline.fit(np.zeros((0, 3)), []).predict([(0.1, 0.1, 0.1)]) == [[]]


def test_leave_one_patient_out_is_perfect_when_position_gives_the_site_away_and_chance_when_not():
    z = {"a": 0.2, "b": 0.5, "c": 0.8}
    pos, lab, grp = [], [], []
    for patient in range(6):
        for site, zz in z.items():
            pos.append((0.5, 0.5, zz))
            lab.append(site)
            grp.append(patient)
    assert leave_one_group_out_top1(pos, lab, grp) == 1.0
    rng = np.random.default_rng(0)
    shuffled = list(rng.permutation(lab))
    assert leave_one_group_out_top1(pos, shuffled, grp) < 0.7
