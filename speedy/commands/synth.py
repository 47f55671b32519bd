"""`speedy synth`: text file (or stdin, or --text) → 16-bit PCM mono WAV."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from speedy.commands.common import console, emit_json, json_option, progress_bar, threads_option
from speedy.errors import InputError


def read_text_input(source: str | None, text: str | None) -> str:
    """The text to speak from --text, a file path, or '-' (stdin); strict UTF-8 with the bad byte's offset."""
    if text is not None and source is not None:
        raise InputError("give either a FILE argument or --text, not both")
    if text is not None:
        return text
    if source is None:
        raise InputError("no text: give a FILE, '-' for stdin, or --text")
    if source == "-":
        data = sys.stdin.buffer.read()
        name = "stdin"
    else:
        p = Path(source)
        if p.is_dir():
            raise InputError(f"{p} is a directory, not a text file")
        if not p.is_file():
            raise InputError(f"{p}: no such file")
        data = p.read_bytes()
        name = str(p)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: invalid UTF-8 at byte offset {e.start}") from None


@click.command()
@click.argument("source", required=False, metavar="[FILE|-]")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=True), help="WAV file to write.")
@click.option("--text", default=None, help="Text to speak (instead of FILE).")
@click.option(
    "--artifact",
    type=click.Path(),
    default=None,
    help="Artifact folder (default: the embedded voice, exported to ONNX on first use).",
)
@click.option("--speed", type=float, default=1.0, show_default=True, help="Speaking rate ×, 0.5–2.0.")
@click.option("--pitch", type=float, default=0.0, show_default=True, help="Pitch shift in semitones, −12…+12.")
@click.option("--pitch-range", type=float, default=1.0, show_default=True, help="F0 movement ×, 0–2.")
@click.option("--energy", type=float, default=1.0, show_default=True, help="Loudness ×, 0.5–2.0.")
@click.option("--emotion", default=None, help="中性 喜悦 悲伤 愤怒 (or neutral, happy, sad, angry).")
@click.option("--voice", default=None, help="Voice of a multi-voice artifact (`speedy info DIR` lists them).")
@click.option(
    "--wav",
    "wav_in",
    type=click.Path(),
    default=None,
    help="A recording to copy-synthesise (its mel through the vocoder) with a vocoder-only artifact.",
)
@threads_option
@json_option
def synth(
    source: str | None,
    output: str,
    text: str | None,
    artifact: str | None,
    speed: float,
    pitch: float,
    pitch_range: float,
    energy: float,
    emotion: str | None,
    voice: str | None,
    wav_in: str | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """Synthesise Chinese text to a WAV file.

    FILE is a UTF-8 text file, or '-' for stdin. The WAV is 16-bit PCM mono at the model's sample rate,
    written to a temporary file and renamed, so a failure never leaves a partial WAV at OUTPUT.

    \b
    Examples:
      speedy synth text.txt -o out.wav
      echo 今天天气很好。 | speedy synth - -o out.wav --emotion 喜悦 --json
      speedy synth --artifact hifigan-dir --wav in.wav -o out.wav   (vocoder-only: copy synthesis)
    """
    from speedy.controls import SynthesisOptions
    from speedy.synth import Synthesizer, check_output_path, check_text

    if wav_in is not None:
        copy_synthesis(wav_in, source, text, output, artifact, threads, as_json)
        return
    body = check_text(read_text_input(source, text))
    options = SynthesisOptions(
        speed=speed, pitch=pitch, pitch_range=pitch_range, energy=energy, emotion=emotion, voice=voice
    )
    out = Path(output)
    check_output_path(out)
    synthesizer = Synthesizer.load(artifact, threads=threads, progress=lambda m: console.log(m))
    with progress_bar(not as_json and len(body) > 200, "synthesising", total=len(body)) as bar:
        result = synthesizer.to_wav(body, out, options, on_chunk=lambda c: bar.advance(len(c.text)))
    info = {
        "output": str(out),
        "audio_seconds": round(result.duration_s, 3),
        "sample_rate": result.sample_rate,
        "characters": result.characters,
        "sentences": result.chunks,
        "rtf": round(result.rtf, 4),
        "acoustic_s": round(result.acoustic_s, 4),
        "vocoder_s": round(result.vocoder_s, 4),
        "artifact": str(synthesizer.root),
        "voice": voice or synthesizer.manifest.default_voice,
    }
    if as_json:
        emit_json(info)
    else:
        console.print(f"wrote {out} ({result.duration_s:.2f} s audio, RTF {result.rtf:.3f})")


def copy_synthesis(
    wav_in: str,
    source: str | None,
    text: str | None,
    output: str,
    artifact: str | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """``synth --wav``: a recording's mel through a vocoder-only artifact's vocoder, written as a WAV."""
    from speedy.synth import Synthesizer, check_output_path, write_wav
    from speedy.wav_input import read_wav

    if source is not None or text is not None:
        raise InputError("give either --wav or text (FILE or --text), not both")
    if artifact is None:
        raise InputError("--wav needs --artifact DIR, a vocoder-only artifact (e.g. speedy export hifigan -o DIR)")
    out = Path(output)
    check_output_path(out)
    synthesizer = Synthesizer.load(artifact, threads=threads, progress=lambda m: console.log(m))
    if not synthesizer.manifest.vocoder_only:
        raise InputError(f"--wav needs a vocoder-only artifact; {artifact} ({synthesizer.manifest.family}) takes text")
    notes: list[str] = []
    audio = read_wav(Path(wav_in), synthesizer.sample_rate, notes.append)
    result = synthesizer.copy_synthesize(audio)
    write_wav(out, result.audio, result.sample_rate)
    if as_json:
        emit_json(
            {
                "output": str(out),
                "input": wav_in,
                "audio_seconds": round(result.duration_s, 3),
                "sample_rate": result.sample_rate,
                "rtf": round(result.rtf, 4),
                "analysis_s": round(result.acoustic_s, 4),
                "vocoder_s": round(result.vocoder_s, 4),
                "resampled": notes[0] if notes else None,
                "artifact": str(synthesizer.root),
            }
        )
        return
    for note in notes:
        console.print(note)
    console.print(f"wrote {out} ({result.duration_s:.2f} s audio, RTF {result.rtf:.3f})")
