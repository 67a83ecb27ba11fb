"""Packaging for scipion-em-cryoprocs (Scipion plugin + standalone ``cryoprocs`` command)."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.abspath(os.path.dirname(__file__))


def _version():
    with open(os.path.join(HERE, "cryoprocs", "__init__.py"), encoding="utf-8") as fh:
        return re.search(r'^__version__\s*=\s*"([^"]+)"', fh.read(), re.M).group(1)


def _long_description():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as fh:
        return fh.read()


# The Scipion stack pins numpy 1.26.1 and scipy <= 1.10.0 (scipion-pyworkflow / scipion-em);
# every range below is chosen to resolve inside those pins.
INSTALL_REQUIRES = [
    "scipion-pyworkflow>=3.11.7,<3.12",
    "scipion-em>=3.11.1,<3.12",
    "scipion-em-tomo>=3.12.4,<3.13",
    "numpy>=1.26,<2",
    "scipy>=1.10,<1.11",
    "mrcfile>=1.4.0,<=1.4.3",
    "starfile>=0.5.6",
    "pandas>=2.1,<4",
    "tifffile",
    "threadpoolctl>=3.1",
    "tqdm>=4.60",
    # ExportMovie: CLAHE and the MJPG parity writer (>= 4.12 needs numpy 2), and the bundled
    # ffmpeg for H.264 MP4 / GIF (no numpy ABI coupling)
    "opencv-python-headless>=4.8,<4.12",
    "imageio-ffmpeg>=0.5",
    "pillow",
    # MaskedTomogramNoiseFill: exact Euclidean distance transform (seung-lab)
    "edt>=3,<4",
    # compiled reconstruction backprojection (kernels/_numba_kernels.py); optional at run
    # time: without it the NumPy implementation gives the same numbers, ~2.4x slower
    "numba>=0.59",
    # ScoresPeakPicking diagnostics plots (also a requirement of scipion-pyworkflow)
    "matplotlib",
    # ExportMovie particles from IMOD models (teamtomo; needs numpy, pandas, pydantic>=2)
    "imodmodel>=0.1",
    # OME-Zarr images, local or remote (convert/zarr_image.py): zarr 2 (copick <= 1.2, the
    # newest copick under Scipion's mrcfile <= 1.4.3 pin, needs zarr < 3 and numcodecs < 0.16),
    # fsspec for URLs and aiohttp for its http(s) backend
    "zarr>=2.16,<3",
    "numcodecs>=0.12,<0.16",
    "fsspec>=2023.6",
    "aiohttp>=3.8",
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest>=7",
        "pytest-timeout>=2.1",
    ],
    # copick projects (import / export protocols and commands); copick >= 1.3 needs
    # mrcfile >= 1.5.4 and >= 1.5 numpy 2, both outside Scipion's pins. copick brings s3fs
    # (s3:// URLs) and ome-zarr (used by the tests as an independent OME-Zarr writer).
    "copick": [
        "copick>=1.2,<1.3",
        "ome-zarr>=0.9,<0.12",
    ],
    # s3:// URLs without copick
    "s3": ["s3fs"],
    # RELION 5 refinement in Scipion: ExtractSubtomos (2D stacks) also registers
    # scipion-em-reliontomo's RelionSetOfPseudoSubtomograms, and ReconstructSubtomoAverage
    # reads it. reliontomo 4.0.5 imports scipion.install (scipion-app); it brings the
    # scipion-em-relion and scipion-em-imod plugins (Python only: no binaries installed).
    "reliontomo": [
        "scipion-em-reliontomo>=4.0.5,<4.1",
        "scipion-app>=3.8.3,<3.9",
    ],
}

setup(
    name="scipion-em-cryoprocs",
    version=_version(),
    description="Scipion plugin with fast NumPy/SciPy kernels for cryo-EM and cryo-ET processing",
    long_description=_long_description(),
    long_description_content_type="text/markdown",
    license="GPLv3",
    url="https://github.com/cryoprocs/scipion-em-cryoprocs",
    python_requires=">=3.9",
    packages=find_packages(exclude=["benchmarks", "benchmarks.*"]),
    package_data={"cryoprocs": ["protocols.conf", "cryoprocs_logo.png",
                                "templates/*.json.template"],
                  "cryoprocs.tests.slurm": ["*.sh"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "pyworkflow.plugin": ["cryoprocs = cryoprocs"],
        "console_scripts": ["cryoprocs = cryoprocs.cli:main"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: GNU General Public License v3 (GPLv3)",
        "Topic :: Scientific/Engineering :: Bio-Informatics",
    ],
)
