import type { CheckCase } from './check.ts';

export const moeChecks: CheckCase[] = [];
