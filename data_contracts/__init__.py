

from data_contracts import hierarchy as _hierarchy  # noqa: E402,F401 - registers the location nodes with taxonomy.get
