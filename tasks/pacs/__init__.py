"""The hospital loop: studies from a PACS over DICOMweb, captions back as DICOM SEG + SR (TID 1500).

``dicom_series``: read a source series and align a labelled volume to its slices; ``site_codes``: coded finding
sites; ``seg_export`` / ``sr_export``: the SEG and SR documents; ``dicomweb``: the client; ``pull`` / ``push``:
QIDO + WADO into the raw drop layout, STOW of the results.
"""
