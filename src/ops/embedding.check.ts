import type { CheckCase } from './check.ts';

export const embeddingChecks: CheckCase[] = [];
