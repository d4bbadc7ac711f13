"""The outputs of one captioned study: the answer's records (``records``), the writers (``writers``: JSON, the
visual report; a DICOM SR / SEG writer goes beside them) and the figure itself (``figure``)."""
