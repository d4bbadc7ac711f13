import pickle

from data_contracts.errors import PetcapError, PrerequisiteError, TransientError, UsageError


class _StudyError(PetcapError):
    def __init__(self, reason: str, source: str, detail: str):
        super().__init__(detail, path=source, reason=reason)
        self.source = source


def test_one_line_names_file_reason_and_hint():
    err = PetcapError("no such file", path="reports/a.txt", reason="missing_report", hint="check the drop")
    assert str(err) == "reports/a.txt: missing_report: no such file (check the drop)"


def test_exit_codes_and_retryability():
    assert UsageError("x").exit_code == 2 and PrerequisiteError("x").exit_code == 2
    assert PetcapError("x").exit_code == 1
    assert TransientError("x").retryable and not UsageError("x").retryable


def test_subclass_pickles_with_its_fields():
    err = pickle.loads(pickle.dumps(_StudyError("truncated_file", "ct.nii.gz", "3 of 120 slices")))
    assert type(err) is _StudyError and err.source == "ct.nii.gz" and err.reason == "truncated_file"
    assert str(err) == "ct.nii.gz: truncated_file: 3 of 120 slices"
