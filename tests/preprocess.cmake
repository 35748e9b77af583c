# preprocess/: resize, split, dataset cache.
pnx_add_test(NAME test_preprocess_resize SOURCES test_preprocess_resize.c LIBS pnx_preprocess)
pnx_add_test(NAME test_preprocess_split SOURCES test_preprocess_split.c LIBS pnx_preprocess)
pnx_add_test(NAME test_preprocess_cache SOURCES test_preprocess_cache.c LIBS pnx_preprocess)
