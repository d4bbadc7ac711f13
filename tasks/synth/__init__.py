"""Synthetic whole-body PET/CT cohort written in the raw formats a hospital delivers."""
