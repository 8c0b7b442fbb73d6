"""ament_python package prgcn_ros: PR-GCN action recognition for ROS 2."""
from glob import glob

from setuptools import find_packages, setup

package_name = "prgcn_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["prgcn_ros", "prgcn_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml")),
        (f"share/{package_name}/rviz", glob("rviz/*.rviz")),
        # Each shipped model: its weights and their metadata (not other JSON there, e.g. an
        # exported graph's).
        (f"share/{package_name}/models", [file for weights in glob("models/*.safetensors")
                                          for file in (weights, weights[:-12] + ".json")]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="prgcn_ros developers",
    maintainer_email="dev@prgcn-ros.invalid",
    description="Skeleton-based action recognition with PR-GCN (Li et al., RA-L 2021) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "prgcn-train = prgcn_ros.training.train:main",
            "prgcn-eval = prgcn_ros.training.evaluate:main",
            "prgcn-export = prgcn_ros.training.export:main",
            "prgcn-profile = prgcn_ros.model.profile:main",
            "prgcn-recognizer = prgcn_ros.nodes.recognizer:main",
            "prgcn-player = prgcn_ros.nodes.player:main",
        ],
    },
)
