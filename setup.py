# SPDX-License-Identifier: Apache-2.0
"""ament_python package that also installs with pip."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "codedap_depth"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "benchmarks", "tools"]),
    package_data={
        PACKAGE: [
            "weights/*.safetensors",
            "weights/*.json",
            "regressor/weights/*.safetensors",
            "regressor/weights/*.json",
            "prior/*.json",
            "heldout_manifest.json",
        ]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="codedap_depth developers",
    description="Metric depth from one coded-aperture photo with a diffusion prior (DFD-DPS).",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "codedap-depth = codedap_depth.cli:main",
            "depth_node = codedap_depth.ros.node:main",
        ],
    },
)
