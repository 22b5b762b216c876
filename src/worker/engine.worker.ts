// The engine's Web Worker: exposes the same engineApi the in-process hosts call (src/worker/api.ts).
// The UI cancels a run by terminating this worker and starting a new one.
import * as Comlink from 'comlink';
import { engineApi } from './api.ts';

Comlink.expose(engineApi);
