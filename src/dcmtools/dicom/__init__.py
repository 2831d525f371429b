"""The DICOM file format, without pydicom: reader, writer, data dictionary, values,
tag paths, the DICOM JSON model, the text dump, and the pixel data codecs."""
