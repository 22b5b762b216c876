// A failed (or cancelled) load: what went wrong, in the engine's words (they name the file and the
// problem), and a way forward that depends on the kind of error and where the model came from.
import type { ModelState } from '../../state/store.ts';

interface Advice {
  title: string;
  hint: string;
}

/** The way forward for an error the engine threw while loading from `kind`. */
export function advise(name: string, message: string, kind: ModelState['sourceKind'], label: string): Advice {
  const msg = message.toLowerCase();
  const title = `Could not load ${label || 'the model'}`;
  if (name === 'AbortError') {
    return {
      title: 'Loading cancelled',
      hint: kind === 'files' || kind === 'demo' ? 'Nothing was kept on the GPU. Load the model again when you are ready.' : 'The part already downloaded is kept in this browser: loading the same model again resumes the download from there.',
    };
  }
  if (name === 'GpuLimitError') {
    return { title, hint: 'This GPU adapter cannot hold one of the model’s buffers at that size. Try a smaller model, or a browser and machine with a hardware GPU (WebGPU takes its limits from the adapter).' };
  }
  if (name === 'NoWebGpuError') return { title, hint: 'Open the workbench in Chrome or Edge 113+ (on Linux with --enable-unsafe-webgpu --enable-features=Vulkan).' };
  if (name === 'HubError') {
    if (msg.includes('gated') || msg.includes('private')) {
      return { title, hint: `Open the repo on huggingface.co while signed in and accept its licence, download the files there, then use Choose folder… to load them from disk.` };
    }
    if (msg.includes('not a hugging face repo id')) return { title, hint: 'Enter the repo as owner/name, e.g. HuggingFaceTB/SmolLM2-135M, or paste its huggingface.co URL.' };
    if (msg.includes('not found')) return { title, hint: 'Check the repo id (owner/name, as in the huggingface.co URL) and the revision.' };
    if (msg.includes('could not reach')) return { title, hint: 'Check the network connection, then load again.' };
    return { title, hint: 'Choose a repo with config.json, model.safetensors (or its shards) and tokenizer.json, or a GGUF repo with an F32, F16, BF16 or Q8_0 file.' };
  }
  if (name === 'DownloadError') {
    if (msg.includes('http 401') || msg.includes('http 403')) {
      return { title, hint: 'The file is gated or private. Download it on huggingface.co while signed in, then load it with Choose files… or Choose folder….' };
    }
    if (msg.includes('http 404')) return { title, hint: 'Check the URL: the server has no file there.' };
    return { title, hint: 'Load again: the download resumes from where it stopped instead of starting over.' };
  }
  if (name === 'TypeError' && /fetch|network/.test(msg)) {
    return { title, hint: 'The server could not be reached from this page. It must allow cross-origin requests (CORS) with Range headers, as huggingface.co does.' };
  }
  if (kind === 'demo' && msg.includes('http 404')) {
    return { title, hint: 'This copy of the workbench is served without its demo model (public/demo-model/, made by npm run train:demo). Load a model of your own instead.' };
  }
  if (name === 'CheckpointError') {
    if (/truncated|shorter|past the end/.test(msg)) {
      return { title, hint: 'The file is incomplete (a download or copy that stopped early). Get a complete copy of it, then load it again.' };
    }
    if (msg.includes('tokenizer')) {
      return { title, hint: 'Load the model together with the tokenizer it was trained with: tokenizer.json from the same folder, or the llama2.c tokenizer .bin (tok512.bin for stories260K).' };
    }
    if (kind === 'files') {
      return { title, hint: 'Choose the folder with config.json, model.safetensors and tokenizer.json — or a single .gguf file, or a llama2.c model .bin together with its tokenizer .bin.' };
    }
    return { title, hint: 'The checkpoint is not one MoEfy can run: LLaMA, Mistral or Qwen2 weights as safetensors (F32, F16, BF16) or GGUF (F32, F16, BF16, Q8_0).' };
  }
  if (kind === 'files') return { title, hint: 'Choose the folder with config.json, model.safetensors and tokenizer.json, a single .gguf file, or a llama2.c model .bin with its tokenizer .bin.' };
  return { title, hint: 'Check the source and load again.' };
}

export function ErrorPanel({ model, onDismiss }: { model: ModelState; onDismiss(): void }) {
  if (!model.error) return null;
  const cancelled = model.status === 'cancelled';
  const { title, hint } = advise(model.error.name, model.error.message, model.sourceKind, model.sourceLabel);
  return (
    <div className={`callout ${cancelled ? 'callout-info' : 'callout-bad'} error-panel`} role={cancelled ? 'status' : 'alert'} data-testid="model-error">
      <div className="error-panel-head">
        <div className="callout-title">{title}</div>
        {!cancelled && <span className="error-kind mono">{model.error.name}</span>}
      </div>
      {!cancelled && <p className="error-message mono">{model.error.message}</p>}
      <p className="error-hint">
        <strong>{cancelled ? 'Next: ' : 'What to do: '}</strong>
        {hint}
      </p>
      <button className="btn btn-secondary btn-sm" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  );
}
