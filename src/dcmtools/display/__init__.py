"""Display QA: the DICOM Grayscale Standard Display Function, TG18 patterns, plots."""
