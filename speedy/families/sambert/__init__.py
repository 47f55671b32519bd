"""ModelScope Sambert-HifiGan (KAN-TTS): six acoustic graphs chained by a host loop, plus HiFi-GAN.

Built from a ModelScope model folder (``speedy export --from-modelscope DIR``); no built-in weights.
Emotions of the ``*_emo`` voices are native embedding ids.
"""

from speedy.families import FamilySpec, frozen

SPEC = FamilySpec(
    name="sambert",
    families=("sambert-hifigan",),
    frontends=frozen({"sambert-kantts": "speedy.families.sambert.frontend"}),
    composite="speedy.families.sambert.runtime:load_runner",
    quantize="speedy.families.sambert.export:quantize_graphs",
    native_emotions="speedy.families.sambert.frontend:is_native_emotion",
)
