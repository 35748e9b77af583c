# Tests of the model library (issue 5): safetensors, ops against their
# references and finite differences, and the U-Net against PyTorch fixtures.
pnx_add_test(NAME test_model_safetensors SOURCES test_model_safetensors.c LIBS pnx_common)
pnx_add_test(NAME test_model_ops SOURCES test_model_ops.c LIBS pnx_model)
pnx_add_test(NAME test_model_unet SOURCES test_model_unet.c LIBS pnx_model)
