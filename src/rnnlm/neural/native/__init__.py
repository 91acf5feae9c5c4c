"""The recurrences' per-step elementwise work in compiled C++ (`steps.cpp`), built on first use
with the machine's C++ compiler, and the autograd Functions that drive it (`recurrences`)."""
