"""Build the C kernels and their Cython wrappers.

Each extension module is one Cython file in fastsm/; the C kernels of every
family (src_c/) build into one static library that they link.  The kernels
are plain C99; hot loops carry AVX2 and AVX-512 clones chosen at run time, so
the build itself targets the baseline ISA.
"""
import sys
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

COMMON_SOURCES = ["src_c/parallel.c", "src_c/transpose.c"]

FAMILIES = {
    "fastsm._softmax_kernels": ["src_c/softmax.c", "src_c/softmax_avx512.c"],
    "fastsm._xent_kernels": ["src_c/xent.c", "src_c/xent_avx512.c"],
    "fastsm._batchnorm_kernels": ["src_c/batchnorm.c"],
    "fastsm._binary_kernels": ["src_c/sigmoid.c"],
    "fastsm._optimizer_kernels": ["src_c/adam.c"],
    "fastsm._result_cache": ["src_c/result_cache.c"],
}

if sys.platform == "win32":
    KERNEL_FLAGS = ["/O2"]
    LINK_ARGS = []
else:
    # No -ffast-math: it breaks NaN and inf handling.  Without trapping math
    # the compiler may if-convert the selects in the exp; contraction lets the
    # AVX2 and AVX-512 clones use FMA (ISO C mode would turn it off).
    KERNEL_FLAGS = ["-std=c99", "-O3", "-fno-math-errno", "-fno-trapping-math",
                    "-ffp-contract=fast", "-Wall", "-Wextra",
                    # Python's own flags add -fwrapv, which costs some loops a
                    # tenth; the kernels never overflow a signed integer (UBSan
                    # checks that in tests/c).
                    "-fno-wrapv"]
    LINK_ARGS = ["-pthread"]

# The C kernels build as one static library with their own strict flags; the
# Cython-generated wrappers only link against it.
kernels = ("fastsm_kernels", {
    "sources": COMMON_SOURCES + [src for srcs in FAMILIES.values() for src in srcs],
    "include_dirs": ["src_c"],
    "cflags": KERNEL_FLAGS,
    # recompile when a header changes (the templates are headers): without
    # it an in-place rebuild keeps the old kernels
    "obj_deps": {"": sorted(glob("src_c/*.h"))},
})

extensions = [
    Extension(
        name,
        sources=[name.replace(".", "/") + ".pyx"],
        include_dirs=["src_c", numpy.get_include()],
        extra_compile_args=["-O2"] if sys.platform != "win32" else [],
        extra_link_args=LINK_ARGS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # relink when a kernel changes: the static library is not a source
        depends=sorted(glob("src_c/*.[ch]")),
    )
    for name in FAMILIES
]

setup(
    libraries=[kernels],
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False,
                             "initializedcheck": False},
    ),
)
