# Cython's shared utility code (the memoryview type and its helpers), generated
# by `cython --generate-shared` and imported by the other compiled modules.
# Nothing in it is for users.
