# The score and evaluate stages (pipeline/score_*.c, pipeline/evaluate_stage.c)
# and their tables (db/predictions.c, db/metrics.c).
if(TARGET pnx_db AND TARGET pnx_rle)
  pnx_add_test(NAME test_evaluate
    SOURCES test_evaluate.c ${PROJECT_SOURCE_DIR}/pipeline/evaluate_stage.c
    LIBS pnx_db pnx_rle pnx_common SQLite::SQLite3 ${M_LIBRARY})
endif()
# `pneumoseg score` end to end (outputs, bad files, negatives, kill and
# resume): needs the command with every stage module built.
if(TARGET pneumoseg AND TARGET pnx_model AND TARGET pnx_postprocess AND TARGET pnx_ingest)
  pnx_add_test(NAME test_score SOURCES test_score.c test_ingest_gen.c
    LIBS pnx_model pnx_postprocess pnx_rle pnx_common SQLite::SQLite3 TIMEOUT 300)
  target_compile_definitions(test_score PRIVATE PNX_PNEUMOSEG="$<TARGET_FILE:pneumoseg>")
  add_dependencies(test_score pneumoseg)
endif()
# The network wrapper of the score stage (side from metadata, batching, TTA).
if(TARGET pnx_model AND TARGET pnx_preprocess AND TARGET pnx_postprocess)
  pnx_add_test(NAME test_score_model
    SOURCES test_score_model.c ${PROJECT_SOURCE_DIR}/pipeline/score_model.c
    LIBS pnx_model pnx_preprocess pnx_postprocess pnx_common ${M_LIBRARY})
endif()
