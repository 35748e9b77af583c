# Tests of the model library (issue 5): safetensors, ops against their
# references and finite differences, and the U-Net against PyTorch fixtures.
pnx_add_test(NAME test_model_safetensors SOURCES test_model_safetensors.c LIBS pnx_common)
pnx_add_test(NAME test_model_ops SOURCES test_model_ops.c LIBS pnx_model)
pnx_add_test(NAME test_model_unet SOURCES test_model_unet.c LIBS pnx_model)
# Fused BatchNorm+ReLU and activation transfers against the composition.
pnx_add_test(NAME test_model_fused SOURCES test_model_fused.c LIBS pnx_model)
# The batch that fits when memory runs out, on a fake device.
pnx_add_test(NAME test_model_plan SOURCES test_model_plan.c LIBS pnx_model)
# `pneumoseg predict` end to end; needs the command and, for its DICOM
# input, the ingest and preprocess modules.
if(TARGET pneumoseg AND TARGET pnx_ingest AND TARGET pnx_preprocess)
  pnx_add_test(NAME test_model_predict SOURCES test_model_predict.c
               LIBS pnx_ingest pnx_preprocess pnx_common)
  add_dependencies(test_model_predict pneumoseg)
endif()
