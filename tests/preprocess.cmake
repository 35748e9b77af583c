# preprocess/: resize, split, dataset cache.
pnx_add_test(NAME test_preprocess_resize SOURCES test_preprocess_resize.c LIBS pnx_preprocess)
pnx_add_test(NAME test_preprocess_split SOURCES test_preprocess_split.c LIBS pnx_preprocess)
pnx_add_test(NAME test_preprocess_cache SOURCES test_preprocess_cache.c LIBS pnx_preprocess)
# db/dataset.c: the dataset stage's tables (ground_truth, splits, dataset_unmatched).
if(TARGET pnx_db)
  pnx_add_test(NAME test_preprocess_db SOURCES test_preprocess_db.c LIBS pnx_db)
endif()
# `pneumoseg dataset` end to end on a generated set: needs the command, the
# sample generator, ingest and rle.
if(TARGET pneumoseg AND TARGET gen_sample AND TARGET pnx_ingest AND TARGET pnx_rle
   AND EXISTS "${PROJECT_SOURCE_DIR}/pipeline/dataset_stage.c")
  pnx_add_test(NAME test_preprocess_stage SOURCES test_preprocess_stage.c
               LIBS pnx_preprocess pnx_ingest pnx_rle pnx_db TIMEOUT 300)
  target_compile_definitions(test_preprocess_stage PRIVATE
    PNX_PNEUMOSEG="$<TARGET_FILE:pneumoseg>" PNX_GEN_SAMPLE="$<TARGET_FILE:gen_sample>")
  add_dependencies(test_preprocess_stage pneumoseg gen_sample)
endif()
