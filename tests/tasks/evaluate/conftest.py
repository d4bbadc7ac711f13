"""Session fixtures for the evaluation tests (tables from ``fakes``)."""

import pytest

from tests.tasks.evaluate.fakes import config_predictions, make_lesions


@pytest.fixture(scope="session")
def lesions():
    return make_lesions(60)


@pytest.fixture(scope="session")
def predictions(lesions):
    return config_predictions(lesions)
