// Browser entry: mounts the workbench. The engine itself runs in a Web Worker (src/worker/).
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './ui/App.tsx';
import './ui/app.css';
import './ui/pipeline/pipeline.css';

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
