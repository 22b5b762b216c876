// The engine's Web Worker: exposes the same engineApi the in-process hosts call (src/worker/api.ts).
// Long stages stop through engineApi.cancel() / cancelLoad(); terminating the worker stops anything else.
import * as Comlink from 'comlink';
import { engineApi } from './api.ts';

Comlink.expose(engineApi);
