#!/usr/bin/env python3
"""Build tiny random-weight MusicGen checkpoints in the exact Hugging Face layout and dump golden outputs.

Run from the repository root (see tools/reference/README.md):

    .venv-ref/bin/python tools/reference/make_fixtures.py --out tests/fixtures

Everything is deterministic: fixed seeds, single-threaded torch, no network access, no downloads.

Structure (so that more fixture kinds can be added later):
  * FIXTURES: one FixtureSpec per checkpoint directory (shapes, storage format, seeds, golden "cases").
  * build_tokenizer / build_config / init_weights / calibrate_codec_gain / round_weights_to_bf16:
    construct the checkpoint in memory.
  * GOLDEN_CASES: name -> function(ctx) that adds tensors to the golden file.  Each FixtureSpec lists the
    cases it wants.  New kinds (audio continuation, stereo, melody) = a new case function (+ a new spec).
  * save_checkpoint_fp32 / save_checkpoint_bf16_sharded_renamed: the storage formats.
"""

import argparse
import copy
import dataclasses
import hashlib
import io
import json
import math
import os
import platform
import shutil
import sys
import warnings
from typing import Callable, Dict, List, Optional

import torch

warnings.filterwarnings("ignore", message="To copy construct from a tensor")

import safetensors  # noqa: E402
import safetensors.torch  # noqa: E402
import sentencepiece as spm  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    EncodecConfig,
    GenerationConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
    T5Tokenizer,
)
from transformers.generation.logits_process import (  # noqa: E402
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

CANONICAL_COMMAND = ".venv-ref/bin/python tools/reference/make_fixtures.py --out tests/fixtures"

# Prompts used by every text-conditioned golden (unequal token lengths on purpose).
PROMPTS = ["80s pop track with bassy drums and synth", "jazz"]

# Minimum top-1 minus top-2 gap required for every row of every step of every golden greedy generation.
MIN_GAP = 1e-2
MAX_SEED_ATTEMPTS = 200

# --------------------------------------------------------------------------------------------------------------
# Tokenizer corpus (inline, fixed order).  ~150 short music descriptions.
# --------------------------------------------------------------------------------------------------------------
CORPUS = """\
80s pop track with bassy drums and synth
90s rock song with loud guitars and heavy drums
jazz
smooth jazz with a walking bass and soft piano
upbeat electronic dance music with a catchy synth lead
calm ambient pad with slow evolving textures
lofi hip hop beat with vinyl crackle and mellow keys
epic orchestral score with strings brass and timpani
acoustic folk song with fingerpicked guitar and harmonica
funky disco groove with slap bass and bright horns
dark techno with a driving kick and hypnotic arpeggio
happy ukulele tune with whistling and claps
sad piano ballad in a minor key
reggae rhythm with offbeat guitar skank and deep bass
heavy metal riff with double kick drums and distorted guitars
classical string quartet playing a gentle waltz
latin salsa with congas timbales and a brass section
bluesy slide guitar over a slow shuffle
cinematic trailer music with huge drums and choir
chill house track with warm chords and a four on the floor beat
minimal piano melody with soft reverb
energetic punk rock with fast drums and shouted vocals
dreamy synthwave with retro arpeggios and gated reverb drums
country song with banjo fiddle and steel guitar
bossa nova with nylon guitar and brushed drums
trap beat with booming 808 bass and rapid hi hats
drum and bass with fast breakbeats and a rolling bassline
meditative drone with singing bowls and deep hum
cheerful marching band with trumpets and snare drums
romantic violin solo with a lush string orchestra
70s funk with wah guitar and tight drums
60s surf rock with twangy reverb guitar
2000s pop punk with catchy chorus and power chords
soulful rnb groove with electric piano and smooth bass
gospel choir with hammond organ and hand claps
celtic jig with tin whistle fiddle and bodhran
japanese koto melody over soft ambient strings
indian sitar raga with tabla percussion
african drums with polyrhythmic percussion and chanting
middle eastern oud melody with darbuka rhythm
flamenco guitar with passionate strumming and hand claps
jazz fusion with electric bass and complex chords
big band swing with saxophones and trombones
bebop jazz with fast trumpet solo and upright bass
cool jazz trio with muted trumpet and soft brushes
free jazz improvisation with wild saxophone
baroque harpsichord piece with ornate counterpoint
romantic era piano sonata with dramatic dynamics
modern classical piece with sparse piano and cello
video game chiptune with square wave melodies
8 bit arcade music with fast arpeggios
ambient electronic music with glitchy textures
dubstep drop with wobble bass and heavy snare
trance anthem with uplifting synths and a big build up
deep house with a warm bassline and vocal chops
garage rock with fuzzy guitars and raw drums
grunge song with distorted guitars and moody vocals
indie pop with jangly guitars and bright synths
shoegaze wall of guitar noise with dreamy vocals
post rock crescendo with tremolo guitars
math rock with odd time signatures and tapping guitar
progressive rock with long keyboard solos
psychedelic rock with swirling organ and fuzz guitar
hard rock anthem with screaming guitar solo
soft rock ballad with acoustic guitar and piano
lullaby with music box and gentle strings
children song with xylophone and happy melody
horror soundtrack with eerie strings and low drones
suspenseful thriller music with ticking percussion
action scene music with fast strings and brass hits
sad cinematic piano with slow strings
heroic fanfare with trumpets and french horns
peaceful flute melody over a harp
relaxing spa music with soft synth pads and water sounds
upbeat corporate music with light guitar and claps
motivational pop rock with driving drums
tropical house with steel drums and marimba
kpop song with punchy beats and bright synths
afrobeat groove with horns and percussion
cumbia rhythm with accordion and guacharaca
tango with bandoneon and dramatic violin
polka with accordion and tuba
mariachi band with trumpets violins and guitarron
samba with surdo drums and cavaquinho
ska song with upbeat horns and offbeat guitar
dub reggae with echoing snare and deep bass
soul ballad with strings and a slow groove
neo soul with jazzy chords and laid back drums
boom bap hip hop with dusty samples and scratches
drill beat with sliding 808 and dark piano
phonk with cowbell melody and distorted bass
hyperpop with pitched vocals and glitchy drums
future bass with lush chords and vocal chops
electro swing with brass samples and four on the floor
industrial music with metallic percussion and harsh synths
darkwave with cold synths and gloomy bass
new wave with jangly guitar and analog synths
italo disco with arpeggiated bass and bright lead
eurodance with energetic beat and catchy hook
breakbeat with chopped drums and funky bass
jungle with amen breaks and sub bass
idm with complex rhythms and glitchy sounds
downtempo trip hop with moody atmosphere
chillout lounge music with soft electric piano
acid house with squelchy 303 bassline
minimal techno with clicks and deep groove
hardstyle with distorted kicks and euphoric melody
gabber with extremely fast kick drums
ambient guitar with long delays and swells
solo cello piece with deep warm tone
solo piano improvisation with jazzy harmony
solo acoustic guitar with open tuning
choir singing a slow hymn in a cathedral
a cappella group with vocal harmonies
whistled melody over a simple guitar strum
bright ukulele strumming with a happy feel
slow tempo ballad at 60 bpm
fast tempo dance track at 128 bpm
medium tempo groove at 100 bpm
very fast punk song at 180 bpm
relaxed tempo reggae at 75 bpm
energetic and happy summer song
melancholic and nostalgic tune
aggressive and intense metal song
mysterious and dark atmosphere
uplifting and inspiring orchestral theme
romantic and tender love song
playful and quirky cartoon music
tense and dramatic film score
warm and cozy coffee shop jazz
cold and distant ambient soundscape
groovy bass line with tight funky drums
crisp hi hats and a punchy snare
deep sub bass and a thumping kick
shimmering synth pads and soft bells
plucked strings and a gentle marimba
distorted electric guitar with heavy palm muting
clean electric guitar with chorus effect
warm analog synth bass with a slow filter sweep
bright brass stabs and funky guitar
soft flute and clarinet duet
a jazz trio playing in a small club
a rock band playing live in a stadium
an orchestra performing a film score
a dj mixing house music at a party
a street drummer playing on buckets
a lone saxophone playing at night in the city
a folk singer with an acoustic guitar by the fire
a pianist playing a sad song in the rain
rain sounds with a soft piano melody
ocean waves with ambient synth pads
birds singing with a gentle acoustic guitar
"""


def corpus_lines() -> List[str]:
    return [line.strip() for line in CORPUS.splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------------------
# Fixture specifications
# --------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FixtureSpec:
    name: str
    # decoder
    hidden: int
    layers: int
    heads: int
    ffn: int
    num_codebooks: int
    vocab: int
    # T5
    t5_d_model: int
    t5_d_kv: int
    t5_heads: int
    t5_d_ff: int
    t5_layers: int
    # EnCodec
    codec_filters: int
    codec_hidden: int
    codec_codebook_size: int
    # storage: "fp32_single" or "bf16_sharded_renamed"
    storage: str
    max_shard_size: Optional[str] = None
    # weights
    base_seed: int = 0
    lm_head_scale: float = 1.0
    token_embedding_std: float = 0.5
    codec_target_rms: float = 0.3
    # tokenizer
    spm_vocab_size: int = 200
    # golden inputs
    logits_seed: int = 0
    encodec_seed: int = 0
    max_new_tokens: int = 16
    cases: List[str] = dataclasses.field(default_factory=list)


DEFAULT_CASES = [
    "text",  # text.input_ids / text.attention_mask / t5.last_hidden_state / proj.hidden
    "logits",  # logits.decoder_input_ids / logits.full
    "greedy_g3",
    "greedy_g1",
    "single_g3",
    "uncond",
    "warp",  # needs greedy_g3
    "encodec",  # encodec.codes / encodec.audio
]

FIXTURES: Dict[str, FixtureSpec] = {
    "tiny-a": FixtureSpec(
        name="tiny-a",
        hidden=64, layers=2, heads=4, ffn=256, num_codebooks=4, vocab=128,
        t5_d_model=32, t5_d_kv=8, t5_heads=4, t5_d_ff=64, t5_layers=2,
        codec_filters=4, codec_hidden=16, codec_codebook_size=128,
        storage="fp32_single",
        base_seed=1000, lm_head_scale=4.0,
        logits_seed=11, encodec_seed=12,
        cases=list(DEFAULT_CASES),
    ),
    "tiny-b": FixtureSpec(
        name="tiny-b",
        hidden=48, layers=3, heads=2, ffn=192, num_codebooks=4, vocab=96,
        t5_d_model=40, t5_d_kv=10, t5_heads=3, t5_d_ff=80, t5_layers=3,
        codec_filters=6, codec_hidden=24, codec_codebook_size=128,  # HF EnCodec requires a power of 2
        storage="bf16_sharded_renamed", max_shard_size="700KB", spm_vocab_size=160,
        base_seed=2000, lm_head_scale=4.0,
        logits_seed=21, encodec_seed=22,
        cases=list(DEFAULT_CASES),
    ),
}


# --------------------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------------------
def build_tokenizer(spec: FixtureSpec, out_dir: str) -> str:
    """Train a tiny SentencePiece unigram model (T5-style special ids) and write <out_dir>/spiece.model."""
    if hasattr(spm, "set_random_generator_seed"):
        spm.set_random_generator_seed(1234)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()),
        model_writer=buf,
        model_type="unigram",
        vocab_size=spec.spm_vocab_size,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    path = os.path.join(out_dir, "spiece.model")
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def load_slow_tokenizer(spiece_path: str) -> T5Tokenizer:
    return T5Tokenizer(vocab_file=spiece_path, extra_ids=0, legacy=True)


def check_fast_tokenizer(spiece_path: str, prompts: List[str], expected_ids: torch.Tensor) -> str:
    """Compare T5TokenizerFast (converted from the same spiece.model) with the slow tokenizer."""
    from transformers.utils import is_protobuf_available

    if not is_protobuf_available():  # transformers' SentencePiece -> fast converter needs protobuf
        return "skipped: python protobuf not installed (transformers' SentencePiece->fast converter needs it)"
    from transformers import T5TokenizerFast

    fast = T5TokenizerFast(vocab_file=spiece_path, extra_ids=0)
    enc = fast(prompts, padding=True, return_tensors="pt")
    if not torch.equal(enc["input_ids"], expected_ids):
        raise AssertionError(f"fast tokenizer differs: {enc['input_ids']} vs {expected_ids}")
    return "passed: T5TokenizerFast gives identical input_ids"


# --------------------------------------------------------------------------------------------------------------
# Config / model construction
# --------------------------------------------------------------------------------------------------------------
def build_config(spec: FixtureSpec, t5_vocab: int) -> MusicgenConfig:
    t5 = T5Config(
        vocab_size=t5_vocab,
        d_model=spec.t5_d_model,
        d_kv=spec.t5_d_kv,
        num_heads=spec.t5_heads,
        d_ff=spec.t5_d_ff,
        num_layers=spec.t5_layers,
        feed_forward_proj="relu",
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        layer_norm_epsilon=1e-6,
        pad_token_id=0,
        eos_token_id=1,
        n_positions=512,
    )
    codec = EncodecConfig(
        sampling_rate=32000,
        audio_channels=1,
        num_filters=spec.codec_filters,
        hidden_size=spec.codec_hidden,
        codebook_dim=spec.codec_hidden,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=spec.codec_codebook_size,
        target_bandwidths=[2.2],
        num_lstm_layers=2,
        num_residual_layers=1,
        normalize=False,
        use_conv_shortcut=False,
        use_causal_conv=False,
        pad_mode="reflect",
        norm_type="weight_norm",
        kernel_size=7,
        last_kernel_size=7,
        residual_kernel_size=3,
        dilation_growth_rate=2,
        compress=2,
        trim_right_ratio=1.0,
        chunk_length_s=None,
        overlap=None,
    )
    dec = MusicgenDecoderConfig(
        vocab_size=spec.vocab,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        ffn_dim=spec.ffn,
        num_codebooks=spec.num_codebooks,
        audio_channels=1,
        max_position_embeddings=2048,
        activation_function="gelu",
        pad_token_id=spec.vocab,
        bos_token_id=spec.vocab,
    )
    return MusicgenConfig.from_sub_models_config(t5, codec, dec)


def make_generation_config(spec: FixtureSpec) -> GenerationConfig:
    return GenerationConfig(
        do_sample=True,
        guidance_scale=3.0,
        max_length=1500,
        bos_token_id=spec.vocab,
        pad_token_id=spec.vocab,
        decoder_start_token_id=spec.vocab,
    )


def build_model(spec: FixtureSpec, t5_vocab: int) -> MusicgenForConditionalGeneration:
    model = MusicgenForConditionalGeneration(build_config(spec, t5_vocab))
    model.generation_config = make_generation_config(spec)
    model.eval()
    return model


# --------------------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------------------
def _normal(shape, g, std=1.0):
    return torch.randn(shape, generator=g, dtype=torch.float32) * std


def _uniform(shape, g, lo, hi):
    return torch.rand(shape, generator=g, dtype=torch.float32) * (hi - lo) + lo


def is_sinusoid_table(name: str) -> bool:
    return name.endswith("embed_positions.weights")


def init_weights(model: MusicgenForConditionalGeneration, seed: int, spec: FixtureSpec) -> None:
    """Overwrite every real weight with seeded random values (see README for the exact distributions)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied T5 embedding appears once (shared.weight)
            module_name, _, leaf = name.rpartition(".")
            module = model.get_submodule(module_name)
            if is_sinusoid_table(name):
                continue  # fixed sinusoid table, not a weight
            if leaf in ("weight_g", "weight_v"):
                continue  # handled per conv below (g depends on v)
            if isinstance(module, torch.nn.LSTM):
                bound = 1.0 / math.sqrt(module.hidden_size)
                p.copy_(_uniform(p.shape, g, -bound, bound))
            elif isinstance(module, torch.nn.LayerNorm) or module.__class__.__name__ == "T5LayerNorm":
                if leaf == "weight":
                    p.copy_(1.0 + _normal(p.shape, g, 0.1))
                else:
                    p.copy_(_normal(p.shape, g, 0.1))
            elif isinstance(module, torch.nn.Embedding):
                if "relative_attention_bias" in name:
                    p.copy_(_normal(p.shape, g, 1.0))
                elif name.startswith("text_encoder."):
                    p.copy_(_normal(p.shape, g, 1.0))
                else:  # decoder per-codebook token embeddings (summed over K codebooks)
                    p.copy_(_normal(p.shape, g, spec.token_embedding_std))
            elif isinstance(module, torch.nn.Linear):
                if leaf == "weight":
                    std = 1.0 / math.sqrt(p.shape[1])
                    if ".lm_heads." in name:
                        std *= spec.lm_head_scale
                    p.copy_(_normal(p.shape, g, std))
                else:
                    p.copy_(_normal(p.shape, g, 0.1))
            elif isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                assert leaf == "bias", name
                p.copy_(_normal(p.shape, g, 0.1))
            else:
                raise RuntimeError(f"no init rule for parameter {name} ({type(module).__name__})")

        # weight-normalised convolutions: v ~ N(0, 1/fan_in), g = ||v|| (per dim-0 slice) * U(0.5, 1.5)
        for mname, module in model.named_modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) and hasattr(module, "weight_v"):
                v = module.weight_v
                k = module.kernel_size[0]
                if isinstance(module, torch.nn.ConvTranspose1d):
                    fan_in = module.in_channels * k / module.stride[0]
                else:
                    fan_in = module.in_channels * k
                v.copy_(_normal(v.shape, g, 1.0 / math.sqrt(fan_in)))
                norm = v.flatten(1).norm(dim=1).view(-1, 1, 1)
                module.weight_g.copy_(norm * _uniform(norm.shape, g, 0.5, 1.5))

        # EnCodec codebooks (registered buffers): embed ~ N(0, 1); training-only buffers made consistent.
        for bname, buf in model.named_buffers():
            if bname.endswith("codebook.embed"):
                buf.copy_(_normal(buf.shape, g, 1.0))
        for mname, module in model.named_modules():
            if module.__class__.__name__ == "EncodecEuclideanCodebook":
                module.embed_avg.copy_(module.embed)
                module.cluster_size.fill_(1.0)
                module.inited.fill_(1.0)


def calibrate_codec_gain(model: MusicgenForConditionalGeneration, spec: FixtureSpec) -> float:
    """Scale the last decoder conv (g and bias) so decoding random codes gives RMS == codec_target_rms."""
    g = torch.Generator().manual_seed(spec.encodec_seed + 1000)
    k = model.audio_encoder.config.num_quantizers
    probe = torch.randint(0, spec.codec_codebook_size, (1, 2, k, 25), generator=g)
    with torch.no_grad():
        audio = model.audio_encoder.decode(probe, [None]).audio_values
        rms = audio.pow(2).mean().sqrt().item()
        gain = spec.codec_target_rms / rms
        last = model.audio_encoder.decoder.layers[-1].conv
        last.weight_g.mul_(gain)
        last.bias.mul_(gain)
    return gain


def weight_tensors(model: MusicgenForConditionalGeneration):
    """(name, tensor) of every stored float weight except the sinusoid table."""
    for name, t in model.state_dict(keep_vars=True).items():
        if is_sinusoid_table(name) or not t.is_floating_point():
            continue
        yield name, t


def round_weights_to_bf16(model: MusicgenForConditionalGeneration) -> None:
    """Round every weight (parameters and codebook buffers) to the nearest bf16 value, kept as float32."""
    with torch.no_grad():
        for _, t in weight_tensors(model):
            t.data.copy_(t.data.to(torch.bfloat16).to(torch.float32))


# --------------------------------------------------------------------------------------------------------------
# Golden cases
# --------------------------------------------------------------------------------------------------------------
class Ctx:
    """Shared state while computing the goldens of one fixture."""

    def __init__(self, spec, model, tokenizer):
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.tensors: Dict[str, torch.Tensor] = {}
        self.info: Dict[str, dict] = {}
        self.gaps: Dict[str, float] = {}

    def put(self, name: str, t: torch.Tensor) -> None:
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float32)
        else:
            t = t.to(torch.int64)
        self.tensors[name] = t.contiguous().clone()


def text_inputs(ctx: Ctx, prompts: List[str]):
    enc = ctx.tokenizer(prompts, padding=True, return_tensors="pt")
    return enc["input_ids"].to(torch.int64), enc["attention_mask"].to(torch.int64)


def case_text(ctx: Ctx) -> None:
    ids, mask = text_inputs(ctx, PROMPTS)
    with torch.no_grad():
        t5 = ctx.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        proj = ctx.model.enc_to_dec_proj(t5) * mask[..., None]
    ctx.put("text.input_ids", ids)
    ctx.put("text.attention_mask", mask)
    ctx.put("t5.last_hidden_state", t5)
    ctx.put("proj.hidden", proj)
    ctx.info["text"] = {
        "prompts": PROMPTS,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "pieces": [ctx.tokenizer.convert_ids_to_tokens(row) for row in ids.tolist()],
    }


def case_logits(ctx: Ctx) -> None:
    spec, model = ctx.spec, ctx.model
    ids, mask = text_inputs(ctx, PROMPTS)
    B, K, V = ids.shape[0], spec.num_codebooks, spec.vocab
    g = torch.Generator().manual_seed(spec.logits_seed)
    dec_ids = torch.empty((B * K, 6), dtype=torch.int64)
    dec_ids[:, 0] = V
    dec_ids[:, 1:] = torch.randint(0, V, (B * K, 5), generator=g)
    with torch.no_grad():
        t5 = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        proj = model.enc_to_dec_proj(t5) * mask[..., None]
        logits = model.decoder(
            input_ids=dec_ids, encoder_hidden_states=proj, encoder_attention_mask=mask, use_cache=False
        ).logits
    assert tuple(logits.shape) == (B * K, 6, V), logits.shape
    ctx.put("logits.decoder_input_ids", dec_ids)
    ctx.put("logits.full", logits)
    ctx.info["logits"] = {"seed": spec.logits_seed, "hf_logits_shape": list(logits.shape)}


def top_gap(scores: torch.Tensor) -> torch.Tensor:
    top2 = scores.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def run_generation(ctx: Ctx, name: str, inputs: dict, guidance_scale: Optional[float], batch: int) -> None:
    """Greedy HF generate; records un-delayed codes (captured at audio_encoder.decode), audio and scores."""
    spec, model = ctx.spec, ctx.model
    K = spec.num_codebooks
    captured = []
    orig_decode = model.audio_encoder.decode

    def recording_decode(audio_codes, *args, **kwargs):
        captured.append(audio_codes.detach().clone())
        return orig_decode(audio_codes, *args, **kwargs)

    model.audio_encoder.decode = recording_decode
    try:
        kwargs = dict(inputs)
        if guidance_scale is not None:
            kwargs["guidance_scale"] = guidance_scale
        with torch.no_grad():
            out = model.generate(
                **kwargs,
                do_sample=False,
                max_new_tokens=spec.max_new_tokens,
                return_dict_in_generate=True,
                output_scores=True,
            )
    finally:
        del model.audio_encoder.decode  # back to the bound class method
    assert len(captured) == 1, len(captured)
    codes4 = captured[0]
    N = spec.max_new_tokens - 3
    assert tuple(codes4.shape) == (1, batch, K, N), codes4.shape
    codes = codes4[0]
    audio = out.sequences
    assert tuple(audio.shape) == (batch, 1, N * 640), audio.shape
    scores = torch.stack(out.scores, dim=0)
    assert tuple(scores.shape) == (spec.max_new_tokens, batch * K, spec.vocab), scores.shape
    assert torch.isfinite(scores).all() and torch.isfinite(audio).all()
    # Self-check of what the scores are: frame t of codebook k is the argmax of step t + k, row b*K + k.
    for b in range(batch):
        for k in range(K):
            for t in range(N):
                assert codes[b, k, t].item() == scores[t + k, b * K + k].argmax().item(), (name, b, k, t)
    ctx.gaps[name] = top_gap(scores).min().item()
    ctx.put(f"{name}.codes", codes)
    ctx.put(f"{name}.audio", audio)
    ctx.put(f"{name}.scores", scores)
    ctx.info.setdefault("runs", {})[name] = {
        "batch": batch,
        "do_sample": False,
        "max_new_tokens": spec.max_new_tokens,
        "frames": N,
        "steps": spec.max_new_tokens,
        "min_gap": ctx.gaps[name],
        "audio_rms": audio.pow(2).mean().sqrt().item(),
    }


def case_greedy_g3(ctx: Ctx) -> None:
    ids, mask = text_inputs(ctx, PROMPTS)
    run_generation(ctx, "greedy_g3", {"input_ids": ids, "attention_mask": mask}, 3.0, len(PROMPTS))
    ctx.info["runs"]["greedy_g3"].update(prompts=PROMPTS, guidance_scale=3.0)
    # Self-check of the CFG semantics on step 0: uncond + 3 * (cond - uncond), where the unconditional half uses
    # zero T5 states and an all-zero attention mask, and the decoder input is one special-token column.
    spec, model = ctx.spec, ctx.model
    B, K = ids.shape[0], spec.num_codebooks
    with torch.no_grad():
        t5 = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        t5 = torch.cat([t5, torch.zeros_like(t5)], dim=0)
        mask2 = torch.cat([mask, torch.zeros_like(mask)], dim=0)
        proj = model.enc_to_dec_proj(t5) * mask2[..., None]
        start = torch.full((2 * B * K, 1), spec.vocab, dtype=torch.int64)
        logits = model.decoder(
            input_ids=start, encoder_hidden_states=proj, encoder_attention_mask=mask2, use_cache=False
        ).logits[:, -1]
    cond, uncond = logits.split(B * K, dim=0)
    guided = uncond + (cond - uncond) * 3.0
    assert torch.allclose(guided, ctx.tensors["greedy_g3.scores"][0], atol=1e-4, rtol=1e-5), "CFG self-check failed"


def case_greedy_g1(ctx: Ctx) -> None:
    ids, mask = text_inputs(ctx, PROMPTS)
    run_generation(ctx, "greedy_g1", {"input_ids": ids, "attention_mask": mask}, 1.0, len(PROMPTS))
    ctx.info["runs"]["greedy_g1"].update(prompts=PROMPTS, guidance_scale=1.0)


def case_single_g3(ctx: Ctx) -> None:
    ids, mask = text_inputs(ctx, PROMPTS[:1])
    run_generation(ctx, "single_g3", {"input_ids": ids, "attention_mask": mask}, 3.0, 1)
    ctx.info["runs"]["single_g3"].update(prompts=PROMPTS[:1], guidance_scale=3.0)


def case_uncond(ctx: Ctx) -> None:
    unc = ctx.model.get_unconditional_inputs(num_samples=1)
    inputs = {"encoder_outputs": unc.encoder_outputs, "attention_mask": unc.attention_mask}
    run_generation(ctx, "uncond", inputs, unc.guidance_scale, 1)
    ctx.info["runs"]["uncond"].update(
        prompts=None, guidance_scale=unc.guidance_scale, inputs="model.get_unconditional_inputs(num_samples=1)"
    )


WARP = {"temperature": 0.7, "top_k": 5, "top_p": 0.9}


def case_warp(ctx: Ctx) -> None:
    K = ctx.spec.num_codebooks
    scores = ctx.tensors["greedy_g3.scores"]
    # rows of batch item 0 (rows 0..K-1) at steps 0 and 1 -> [2K, V]
    inp = torch.cat([scores[0, :K], scores[1, :K]], dim=0)
    gc = GenerationConfig(do_sample=True, **WARP)
    warpers = ctx.model._get_logits_warper(gc)
    types = [type(w) for w in warpers]
    assert types == [TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper], types
    dummy_ids = torch.zeros((inp.shape[0], 1), dtype=torch.int64)
    out = warpers(dummy_ids, inp.clone())
    kept = torch.isfinite(out).sum(dim=-1)
    ctx.put("warp.input", inp)
    ctx.put("warp.output", out)
    ctx.info["warp"] = dict(
        WARP,
        source="greedy_g3.scores rows 0..K-1 (batch item 0) of step 0, then of step 1",
        warpers=[t.__name__ for t in types],
        kept_per_row=kept.tolist(),
    )


def case_encodec(ctx: Ctx) -> None:
    spec, model = ctx.spec, ctx.model
    g = torch.Generator().manual_seed(spec.encodec_seed)
    k = model.audio_encoder.config.num_quantizers
    codes = torch.randint(0, spec.codec_codebook_size, (1, 2, k, 7), generator=g)
    with torch.no_grad():
        audio = model.audio_encoder.decode(codes, [None]).audio_values
    assert tuple(audio.shape) == (2, 1, 7 * 640), audio.shape
    ctx.put("encodec.codes", codes)
    ctx.put("encodec.audio", audio)
    ctx.info["encodec"] = {"seed": spec.encodec_seed, "audio_rms": audio.pow(2).mean().sqrt().item()}


GOLDEN_CASES: Dict[str, Callable[[Ctx], None]] = {
    "text": case_text,
    "logits": case_logits,
    "greedy_g3": case_greedy_g3,
    "greedy_g1": case_greedy_g1,
    "single_g3": case_single_g3,
    "uncond": case_uncond,
    "warp": case_warp,
    "encodec": case_encodec,
}

GENERATION_CASES = {"greedy_g3", "greedy_g1", "single_g3", "uncond"}


# --------------------------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------------------------
def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def save_checkpoint_fp32(model, out_dir: str) -> dict:
    model.save_pretrained(out_dir, safe_serialization=True)
    assert os.path.exists(os.path.join(out_dir, "model.safetensors"))
    return {"dtype": "float32", "files": ["model.safetensors"], "weight_norm_naming": "weight_g/weight_v"}


def new_weight_norm_name(key: str) -> str:
    if key.endswith(".weight_g"):
        return key[: -len("weight_g")] + "parametrizations.weight.original0"
    if key.endswith(".weight_v"):
        return key[: -len("weight_v")] + "parametrizations.weight.original1"
    return key


def old_weight_norm_name(key: str) -> str:
    if key.endswith(".parametrizations.weight.original0"):
        return key[: -len("parametrizations.weight.original0")] + "weight_g"
    if key.endswith(".parametrizations.weight.original1"):
        return key[: -len("parametrizations.weight.original1")] + "weight_v"
    return key


def save_checkpoint_bf16_sharded_renamed(model, out_dir: str, max_shard_size: str) -> dict:
    # A second instance holding the same (already bf16-representable) weights, converted to bf16 and saved the
    # ordinary way (deepcopy does not work on weight-normalised modules).
    bf16 = MusicgenForConditionalGeneration(model.config)
    bf16.generation_config = copy.deepcopy(model.generation_config)
    bf16.load_state_dict(model.state_dict())
    bf16 = bf16.to(torch.bfloat16).eval()
    bf16.save_pretrained(out_dir, safe_serialization=True, max_shard_size=max_shard_size)
    index_path = os.path.join(out_dir, "model.safetensors.index.json")
    with open(index_path) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    assert 2 <= len(shards) <= 4, shards
    renamed = 0
    for shard in shards:
        path = os.path.join(out_dir, shard)
        tensors = safetensors.torch.load_file(path)
        out = {}
        for k, v in tensors.items():
            nk = new_weight_norm_name(k)
            renamed += nk != k
            out[nk] = v.contiguous()
        safetensors.torch.save_file(out, path, metadata={"format": "pt"})
    index["weight_map"] = {new_weight_norm_name(k): v for k, v in index["weight_map"].items()}
    write_json(index_path, index)
    return {
        "dtype": "bfloat16",
        "files": shards + ["model.safetensors.index.json"],
        "max_shard_size": max_shard_size,
        "weight_norm_naming": "parametrizations.weight.original0 (g) / original1 (v)",
        "renamed_tensors": renamed,
    }


def read_checkpoint_tensors(out_dir: str) -> Dict[str, torch.Tensor]:
    single = os.path.join(out_dir, "model.safetensors")
    if os.path.exists(single):
        return safetensors.torch.load_file(single)
    with open(os.path.join(out_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        part = safetensors.torch.load_file(os.path.join(out_dir, shard))
        for k in part:
            assert index["weight_map"][k] == shard, k
        tensors.update(part)
    assert set(tensors) == set(index["weight_map"]), "index and shards disagree"
    return tensors


def reproduces_goldens(loaded, out_dir: str, ctx: Ctx) -> bool:
    """Recompute logits.full and greedy_g3 with a model loaded from disk; must match bit-exactly."""
    pos = loaded.decoder.model.decoder.embed_positions
    # exact float32 sinusoid (tiny-b stores a bf16-rounded copy of the table)
    pos.weights.data = pos.get_embedding(pos.weights.shape[0], pos.embedding_dim).to(torch.float32)
    loaded.generation_config = GenerationConfig.from_pretrained(out_dir)
    lctx = Ctx(ctx.spec, loaded, ctx.tokenizer)
    case_logits(lctx)
    case_greedy_g3(lctx)
    for name in ("logits.full", "greedy_g3.codes", "greedy_g3.scores", "greedy_g3.audio"):
        assert torch.equal(lctx.tensors[name], ctx.tensors[name]), f"reloaded checkpoint does not reproduce {name}"
    return True


def verify_checkpoint(model, out_dir: str, ctx: Ctx) -> dict:
    """Re-read the files and compare with the in-memory weights; try loading with transformers."""
    stored = read_checkpoint_tensors(out_dir)
    stored_old = {old_weight_norm_name(k): v for k, v in stored.items()}
    sd = model.state_dict()
    missing = sorted(set(sd) - set(stored_old))
    extra = sorted(set(stored_old) - set(sd))
    assert not extra, extra
    for k, v in stored_old.items():
        ref = sd[k]
        if is_sinusoid_table(k):
            assert torch.allclose(v.float(), ref, atol=1e-2), k  # bf16-rounded table in tiny-b
            continue
        assert torch.equal(v.float(), ref), f"stored tensor differs from in-memory weights: {k}"
    # every missing key must be a tied alias of a stored tensor
    for k in missing:
        assert k == "text_encoder.encoder.embed_tokens.weight", f"tensor not stored: {k}"
        assert torch.equal(stored_old["text_encoder.shared.weight"].float(), sd[k])
    report = {
        "stored_tensor_count": len(stored),
        "not_stored_tied_aliases": missing,
        "embed_positions_stored": any(is_sinusoid_table(k) for k in stored),
        "stored_dtypes": sorted({str(v.dtype).replace("torch.", "") for v in stored.values()}),
    }
    # 1) Loading with transformers itself.
    loaded, info = MusicgenForConditionalGeneration.from_pretrained(out_dir, output_loading_info=True)
    loaded.eval()
    lsd = loaded.state_dict()
    identical = all(torch.equal(lsd[k].float(), sd[k]) for k in sd if not is_sinusoid_table(k))
    missing_l = sorted(info.get("missing_keys", []))
    unexpected_l = sorted(info.get("unexpected_keys", []))
    report["hf_from_pretrained"] = {
        "missing_keys_count": len(missing_l),
        "missing_keys_first": missing_l[:2],
        "unexpected_keys_count": len(unexpected_l),
        "unexpected_keys_first": unexpected_l[:2],
        "mismatched_keys": [str(x[0]) for x in info.get("mismatched_keys", [])],
        "weights_identical": bool(identical),
    }
    if identical:
        report["hf_from_pretrained"]["reproduces_goldens"] = reproduces_goldens(loaded, out_dir, ctx)
    # 2) Manual load: config.json + the stored tensors with old weight-norm names, into a fresh model.
    fresh = MusicgenForConditionalGeneration(MusicgenConfig.from_pretrained(out_dir)).eval()
    state = {k: v.float() for k, v in stored_old.items()}
    for k in missing:
        state[k] = state["text_encoder.shared.weight"]
    fresh.load_state_dict(state, strict=True)
    report["manual_load_reproduces_goldens"] = reproduces_goldens(fresh, out_dir, ctx)
    return report


# --------------------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------------------
def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentencepiece": spm.__version__,
        "safetensors": safetensors.__version__,
    }


def value_checks(ctx: Ctx) -> dict:
    t = ctx.tensors
    for name, x in t.items():
        assert not torch.isnan(x.float()).any(), f"NaN in {name}"
        if name != "warp.output":  # -inf is expected there (filtered tokens)
            assert torch.isfinite(x.float()).all(), f"non-finite values in {name}"
    stats = {}
    for name in ("t5.last_hidden_state", "proj.hidden", "logits.full", "greedy_g3.scores"):
        x = t[name]
        stats[name] = {"std": x.std().item(), "absmax": x.abs().max().item()}
        assert 0.1 < x.std().item() and x.abs().max().item() < 100.0, (name, stats[name])
    for name in [n for n in t if n.endswith(".audio")]:
        rms = t[name].pow(2).mean().sqrt().item()
        stats[name] = {"rms": rms, "absmax": t[name].abs().max().item()}
        assert 0.05 <= rms <= 1.0, (name, rms)
    return stats


def build_fixture(spec: FixtureSpec, out_root: str) -> None:
    out_dir = os.path.join(out_root, spec.name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    spiece = build_tokenizer(spec, out_dir)
    tokenizer = load_slow_tokenizer(spiece)
    t5_vocab = tokenizer.sp_model.get_piece_size()

    # Seed search: first seed >= base_seed whose greedy goldens all have gap >= MIN_GAP.
    attempts = []
    for attempt in range(MAX_SEED_ATTEMPTS):
        seed = spec.base_seed + attempt
        torch.manual_seed(seed)
        model = build_model(spec, t5_vocab)
        init_weights(model, seed, spec)
        gain = calibrate_codec_gain(model, spec)
        if spec.storage.startswith("bf16"):
            round_weights_to_bf16(model)
        ctx = Ctx(spec, model, tokenizer)
        for case in spec.cases:
            if case in GENERATION_CASES:
                GOLDEN_CASES[case](ctx)
        min_gap = min(ctx.gaps.values())
        attempts.append({"seed": seed, "min_gap": min_gap})
        print(f"[{spec.name}] seed {seed}: min gap {min_gap:.4g}", flush=True)
        if min_gap >= MIN_GAP:
            break
    else:
        raise RuntimeError(f"no seed in {MAX_SEED_ATTEMPTS} attempts satisfies the gap rule")

    # Final goldens with the chosen seed (fresh context, all cases in order).
    ctx = Ctx(spec, model, tokenizer)
    for case in spec.cases:
        GOLDEN_CASES[case](ctx)
    min_gap = min(ctx.gaps.values())
    assert min_gap >= MIN_GAP
    stats = value_checks(ctx)

    ids = ctx.tensors["text.input_ids"]
    fast_check = check_fast_tokenizer(spiece, PROMPTS, ids)

    # Checkpoint files.
    if spec.storage == "fp32_single":
        ckpt = save_checkpoint_fp32(model, out_dir)
    elif spec.storage == "bf16_sharded_renamed":
        ckpt = save_checkpoint_bf16_sharded_renamed(model, out_dir, spec.max_shard_size)
    else:
        raise ValueError(spec.storage)
    ckpt["verification"] = verify_checkpoint(model, out_dir, ctx)

    safetensors.torch.save_file(ctx.tensors, os.path.join(out_dir, "golden.safetensors"), metadata={"format": "pt"})

    golden = {
        "fixture": spec.name,
        "command": CANONICAL_COMMAND,
        "versions": versions(),
        "spec": dataclasses.asdict(spec),
        "weights": {
            "seed": seed,
            "seed_attempts": attempts,
            "lm_head_scale": spec.lm_head_scale,
            "codec_output_gain": gain,
            "rounded_to_bf16": spec.storage.startswith("bf16"),
        },
        "tokenizer": {
            "spiece_vocab_size": t5_vocab,
            "spiece_sha256": hashlib.sha256(open(spiece, "rb").read()).hexdigest(),
            "slow": "T5Tokenizer(vocab_file=spiece.model, extra_ids=0, legacy=True)",
            "fast_check": fast_check,
        },
        "min_gap_rule": MIN_GAP,
        "min_gap": min_gap,
        "checkpoint": ckpt,
        "stats": stats,
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                    for k, v in ctx.tensors.items()},
    }
    golden.update(ctx.info)
    write_json(os.path.join(out_dir, "golden.json"), golden)
    print(f"[{spec.name}] seed {seed}, min gap {min_gap:.4g}, fast tokenizer check: {fast_check}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output root, e.g. tests/fixtures")
    ap.add_argument("--only", nargs="*", default=None, help="fixture names to build (default: all)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    transformers.logging.set_verbosity_error()

    names = args.only or list(FIXTURES)
    for name in names:
        build_fixture(FIXTURES[name], args.out)

    total = 0
    for name in names:
        d = os.path.join(args.out, name)
        for fn in sorted(os.listdir(d)):
            size = os.path.getsize(os.path.join(d, fn))
            total += size
            print(f"{size:>10}  {os.path.join(d, fn)}")
    print(f"{total:>10}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
