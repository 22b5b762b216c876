// Subscripts inside SVG <text> (w_m, α_i): tspans shifted by a fixed fraction of the font size, so they
// render the same in every font and in exported files.

export function Sub({ base, sub, size }: { base: string; sub: string; size: number }) {
  const shift = Math.round(size * 0.3 * 10) / 10;
  return (
    <>
      <tspan>{base}</tspan>
      <tspan dy={shift} fontSize={size * 0.72}>
        {sub}
      </tspan>
      {/* returns to the baseline: the text after the subscript continues in a following tspan */}
      <tspan dy={-shift}>{'\u200b'}</tspan>
    </>
  );
}
