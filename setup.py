"""bljust: semi-supervised speech recognition with bilevel training (BL-JUST) and LASER."""
from setuptools import find_packages, setup

setup(
    name="bljust",
    version="0.1.0",
    description="Recipe toolkit for semi-supervised ASR with bilevel training (BL-JUST) and LASER",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["bljust", "bljust.*"]),
    python_requires=">=3.9",
    # torch and torchaudio are installed by tools/setup.sh (it keeps a GPU torch
    # that is already there); listing them here would let pip replace it.
    install_requires=[
        "numpy",
        "kaldiio>=2.18",
        "sentencepiece>=0.1.99",
        "pyyaml>=6",
        "typeguard>=4",
        "humanfriendly>=10",
        "soundfile>=0.12",
        # packed models hold their weights as safetensors: a format that cannot carry code
        "safetensors>=0.4",
        "matplotlib>=3.5",
        "tensorboard>=2.10",
    ],
    extras_require={"test": ["pytest"]},
)
