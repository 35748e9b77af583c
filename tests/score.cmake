# The score and evaluate stages (pipeline/score_*.c, pipeline/evaluate_stage.c)
# and their tables (db/predictions.c, db/metrics.c).
if(TARGET pnx_db AND TARGET pnx_rle)
  pnx_add_test(NAME test_evaluate
    SOURCES test_evaluate.c ${PROJECT_SOURCE_DIR}/pipeline/evaluate_stage.c
    LIBS pnx_db pnx_rle pnx_common SQLite::SQLite3 ${M_LIBRARY})
endif()
