# The train stage: augmentation (preprocess/augment.c), its ledger rows
# (db/train.c), and `pneumoseg train` once model/ is built.
pnx_add_test(NAME test_train_augment SOURCES test_train_augment.c LIBS pnx_preprocess)
if(TARGET pnx_db)
  pnx_add_test(NAME test_train_db SOURCES test_train_db.c LIBS pnx_db)
endif()
# The stage itself (pipeline/train_stage.c is compiled in: the pipeline's
# helpers are part of the pneumoseg executable, not a library).
if(TARGET pnx_model AND TARGET pnx_config AND TARGET pnx_db)
  pnx_add_test(NAME test_train_stage
               SOURCES test_train_stage.c ${PROJECT_SOURCE_DIR}/pipeline/train_stage.c
                       ${PROJECT_SOURCE_DIR}/pipeline/train_sampling.c
                       ${PROJECT_SOURCE_DIR}/pipeline/train_metrics.c
                       ${PROJECT_SOURCE_DIR}/pipeline/train_curve.c
               LIBS pnx_config pnx_model pnx_preprocess pnx_db TIMEOUT 120)
endif()
# The command as a user runs it.
if(TARGET pneumoseg AND TARGET pnx_model)
  pnx_add_test(NAME test_train_cli SOURCES test_train_cli.c LIBS pnx_preprocess SQLite::SQLite3
               TIMEOUT 120)
  add_dependencies(test_train_cli pneumoseg)
endif()
