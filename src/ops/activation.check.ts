import type { CheckCase } from './check.ts';

export const activationChecks: CheckCase[] = [];
