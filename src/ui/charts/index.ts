// The workbench's charts: each takes plain pipeline data (src/worker/pipeline-types.ts) as props, reads
// no store, and sits in a ChartFrame with its PNG/SVG/CSV downloads.
export { AccuracyThroughputCurve, type AccuracyThroughputCurveProps } from './AccuracyThroughputCurve.tsx';
export { ActivatedParamsCounter, type ActivatedParamsCounterProps } from './ActivatedParamsCounter.tsx';
export { ChartFrame, type ChartFrameProps } from './ChartFrame.tsx';
export { ExpertLoadHeatmap, type ExpertLoadHeatmapProps } from './ExpertLoadHeatmap.tsx';
export { LinePlot, type LinePlotProps, type PlotSeries } from './LinePlot.tsx';
export { LossChart, type LossChartProps, type LossCurve } from './LossChart.tsx';
export { PolicyTable, type PolicyTableProps } from './PolicyTable.tsx';
export { RoutingHistograms, type RoutingHistogramsProps } from './RoutingHistograms.tsx';
export { SensitivityBars, type SensitivityBarsProps } from './SensitivityBars.tsx';
export { GradNormChart, LearningRateChart, StageLossChart, ThroughputChart, TrainLossChart, type StageCurve, type TrainLossChartProps } from './TrainCharts.tsx';
