"""Packaging for hf-metatts (import name ``hf_metatts``)."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildWithModelCards(build_py):
    """Ships the repository's ``model_cards/`` templates inside the installed package."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "hf_metatts" / "model_cards"
        target.mkdir(parents=True, exist_ok=True)
        for template in (HERE / "model_cards").glob("*.md"):
            shutil.copy2(template, target / template.name)

CORE_REQUIRES = [
    "torch>=2.4,<3",
    "transformers>=5.0,<6",
    "datasets>=3.0,<6",
    "accelerate>=1.0,<2",
    "evaluate>=0.4,<0.5",
    "huggingface-hub>=1.0,<3",
    "safetensors>=0.4,<1",
    "phonemizer>=3.2,<4",
    "espeakng-loader>=0.2,<0.3",
    "soundfile>=0.12,<1",
    "soxr>=0.3,<2",
    "numpy>=1.24,<3",
    "scipy>=1.10,<2",
    "tqdm>=4.60",
    "pyworld>=0.3.4,<0.4",  # pitch (F0) targets and voice perturbation
    "setuptools<81",  # pyworld 0.3.x imports pkg_resources at import time
]

# resemblyzer (speaker encoder) must be installed with --no-deps and pysptk without build isolation:
# scripts/setup.sh does both (see docs and FIELD_NOTES-style notes in README).
EXTRAS = {
    "evaluation": [
        "librosa>=0.10",
        "webrtcvad-wheels>=2.0",
        "pocketsphinx>=5.0,<6",
        "jiwer>=3.0,<5",
        "scikit-learn>=1.1",
        "matplotlib>=3.7",
        "G722>=1.2,<2",  # decodes the Asterisk prompts (real recorded voices, hf_metatts.data.prompt_recordings)
    ],
    "demo": ["gradio>=6.31,<7", "gradio_client>=2.0"],
    "tests": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "playwright>=1.40"],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name="hf-metatts",
    version="0.1.0.dev0",
    description="Meta-learned few-shot text-to-speech for the Hugging Face ecosystem",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["hf_metatts", "hf_metatts.*"]),
    include_package_data=True,
    package_data={"hf_metatts": ["**/*.json", "**/*.md", "**/*.txt", "**/*.safetensors", "**/*.py"]},
    install_requires=CORE_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["hf-metatts=hf_metatts.cli:main"]},
    cmdclass={"build_py": BuildWithModelCards},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
