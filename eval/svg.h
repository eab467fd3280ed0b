/* Inline SVG charts for report.html: line charts (linear or log axes, reference lines, marked
 * points, legend) and horizontal bar charts. Output is plain SVG markup with no scripts, fonts or
 * external references; all text passes through us_svg_escape. Colours are
 * trusted strings chosen by the report code, never user text. */
#ifndef US_EVAL_SVG_H
#define US_EVAL_SVG_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/status.h"

typedef enum {
  US_SVG_NUMBER,  /* 0.25, 1.5k */
  US_SVG_PERCENT, /* values in [0, 1] shown as 25% */
  US_SVG_USD,     /* $1.5k */
  US_SVG_COUNT    /* 1k, 1M */
} us_svg_format;

typedef struct us_svg_line {
  const char *name; /* legend text (user text allowed: escaped) */
  const double *x, *y;
  int n; /* points; non-finite ones (and <= 0 on a log axis) break the line */
  const char *color;
  bool dashed;
} us_svg_line;

/* A reference line across the plot: horizontal at y = at, or vertical at x = at. */
typedef struct us_svg_rule {
  bool vertical;
  double at;
  const char *text; /* label drawn next to it */
  const char *color;
  bool label_low; /* label at the bottom (vertical) or at the left under the line
                     (horizontal) instead of the top / right end */
} us_svg_rule;

/* A marked point with a label (e.g. the break-even point). */
typedef struct us_svg_mark {
  double x, y;
  const char *text;
  const char *color;
} us_svg_mark;

typedef struct us_svg_chart {
  const char *title; /* accessible name: <title> and aria-label */
  const char *x_label, *y_label;
  int width, height; /* viewBox size; the chart scales to its container */
  bool log_x, log_y;
  double x_min, x_max, y_min, y_max; /* NAN: from the data */
  us_svg_format x_format, y_format;
  const us_svg_line *lines;
  int n_lines;
  const us_svg_rule *rules;
  int n_rules;
  const us_svg_mark *marks;
  int n_marks;
} us_svg_chart;

/* Fills c with an empty 640 x 320 chart on linear axes with automatic ranges. */
void us_svg_chart_init(us_svg_chart *c);

/* Appends one <svg> element drawing c to out. */
us_status us_svg_line_chart(us_buf *out, const us_svg_chart *c, us_err *err);

/* Appends a horizontal bar chart: one bar per label, values in [0, 1] shown as value_format,
 * in the order given. */
us_status us_svg_bar_chart(us_buf *out, const char *title, const char *const *labels,
                           const double *values, int n, int width, us_svg_format value_format,
                           us_err *err);

/* Appends s escaped for XML/HTML text and attribute values: & < > " ' become entities; invalid
 * UTF-8 and control characters other than tab, newline and carriage return become U+FFFD. */
us_status us_svg_escape(us_buf *out, const char *s);

/* Formats v for a tick or value label into buf (at least 32 bytes). */
void us_svg_format_value(char *buf, int size, double v, us_svg_format f);

#endif
