import type { CheckCase } from './check.ts';

export const ropeChecks: CheckCase[] = [];
