// Turning what the user picked or dropped into the engine's `{kind: 'files'}` source: the File objects and
// their paths inside the folder (a File's webkitRelativePath does not survive the trip to the worker).
import type { ModelSource } from '../../worker/api.ts';

export interface PickedFiles {
  source: Extract<ModelSource, { kind: 'files' }>;
  /** For the page: 'stories260K.bin + tok512.bin', or the folder's name. */
  label: string;
}

export function picked(files: File[], paths: string[]): PickedFiles {
  const folders = new Set(paths.filter((p) => p.includes('/')).map((p) => p.split('/')[0]));
  const names = files.map((f) => f.name);
  const label =
    folders.size === 1 && paths.every((p) => p.includes('/'))
      ? `${[...folders][0]}/`
      : names.length <= 3
        ? names.join(' + ')
        : `${names.slice(0, 2).join(' + ')} + ${names.length - 2} more`;
  return { source: { kind: 'files', files, paths }, label };
}

/** From an <input type=file> (files, or a folder with webkitdirectory). */
export function fromInput(list: FileList | null): PickedFiles | null {
  const files = list ? [...list] : [];
  if (!files.length) return null;
  return picked(files, files.map((f) => f.webkitRelativePath || f.name));
}

/**
 * From a drop: files as they are, and for a dropped folder the files at its top level (a checkpoint's
 * files sit there; sub-folders such as .git or onnx/ are not read).
 */
export async function fromDrop(dt: DataTransfer): Promise<PickedFiles | null> {
  const entries = [...dt.items].map((it) => it.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  if (!entries.length) return fromInput(dt.files);
  const files: File[] = [];
  const paths: string[] = [];
  for (const e of entries) {
    if (e.isFile) {
      files.push(await fileOf(e as FileSystemFileEntry));
      paths.push(e.name);
    } else if (e.isDirectory) {
      for (const child of await readDir(e as FileSystemDirectoryEntry)) {
        if (!child.isFile || child.name.startsWith('.')) continue;
        files.push(await fileOf(child as FileSystemFileEntry));
        paths.push(`${e.name}/${child.name}`);
      }
    }
  }
  return files.length ? picked(files, paths) : null;
}

function fileOf(e: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => e.file(resolve, reject));
}

/** readEntries returns a batch at a time (100 in Chrome) until an empty one. */
async function readDir(dir: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = dir.createReader();
  const out: FileSystemEntry[] = [];
  for (let i = 0; i < 1000; i++) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    out.push(...batch);
  }
  return out;
}
