# preprocess/: resize, split, dataset cache.
pnx_add_test(NAME test_preprocess_resize SOURCES test_preprocess_resize.c LIBS pnx_preprocess)
pnx_add_test(NAME test_preprocess_split SOURCES test_preprocess_split.c LIBS pnx_preprocess)
pnx_add_test(NAME test_preprocess_cache SOURCES test_preprocess_cache.c LIBS pnx_preprocess)
# db/dataset.c: the dataset stage's tables (ground_truth, splits, dataset_unmatched).
if(TARGET pnx_db)
  pnx_add_test(NAME test_preprocess_db SOURCES test_preprocess_db.c LIBS pnx_db)
endif()
