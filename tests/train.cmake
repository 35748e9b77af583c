# The train stage: augmentation (preprocess/augment.c), its ledger rows
# (db/train.c), and `pneumoseg train` once model/ is built.
pnx_add_test(NAME test_train_augment SOURCES test_train_augment.c LIBS pnx_preprocess)
if(TARGET pnx_db)
  pnx_add_test(NAME test_train_db SOURCES test_train_db.c LIBS pnx_db)
endif()
