import type { CheckCase } from './check.ts';

export const softmaxChecks: CheckCase[] = [];
