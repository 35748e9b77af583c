# postprocess/ tests: masks from probabilities, derived UIDs, overlays, and the
# DICOM SEG / Secondary Capture writers (DCMTK helpers in test_postprocess_dicom.cc).
pnx_add_test(NAME test_postprocess
  SOURCES test_postprocess.c
  LIBS pnx_postprocess)
pnx_add_test(NAME test_postprocess_overlay
  SOURCES test_postprocess_overlay.c
  LIBS pnx_postprocess PNG::PNG)
pnx_add_test(NAME test_postprocess_seg
  SOURCES test_postprocess_seg.c test_postprocess_dicom.cc
  LIBS pnx_postprocess DCMTK::DCMTK Threads::Threads)
pnx_add_test(NAME test_postprocess_sc
  SOURCES test_postprocess_sc.c test_postprocess_dicom.cc
  LIBS pnx_postprocess DCMTK::DCMTK Threads::Threads)
