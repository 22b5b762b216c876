import type { CheckCase } from './check.ts';

export const attentionChecks: CheckCase[] = [];
