/* Inline SVG line and bar charts, and the XML/HTML escaper every report writer uses. */
#include "eval/svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/utf8.h"

#define MAX_PLOTTED 600 /* points per line; longer lines are thinned evenly */

us_status us_svg_escape(us_buf *out, const char *s) {
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  const unsigned char *end = p + strlen((const char *)p);
  us_status st = US_OK;
  while (*p && st == US_OK) {
    const char *rep = NULL;
    switch (*p) {
      case '&':
        rep = "&amp;";
        break;
      case '<':
        rep = "&lt;";
        break;
      case '>':
        rep = "&gt;";
        break;
      case '"':
        rep = "&quot;";
        break;
      case '\'':
        rep = "&#39;";
        break;
      default:
        break;
    }
    if (rep) {
      st = us_buf_puts(out, rep);
      p++;
      continue;
    }
    if ((*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7F) {
      st = us_buf_puts(out, "\xEF\xBF\xBD");
      p++;
      continue;
    }
    int len = us_utf8_decode((const char *)p, (size_t)(end - p), NULL);
    if (len == 0) {
      st = us_buf_puts(out, "\xEF\xBF\xBD");
      p++;
    } else {
      st = us_buf_append(out, p, (size_t)len);
      p += len;
    }
  }
  return st;
}

/* Compact number: 1.5k, 2M, 0.25, 3e-06. */
static void compact(char *buf, int size, double v) {
  double a = fabs(v);
  if (a >= 1e9)
    snprintf(buf, (size_t)size, "%.3gB", v / 1e9);
  else if (a >= 1e6)
    snprintf(buf, (size_t)size, "%.3gM", v / 1e6);
  else if (a >= 1e3)
    snprintf(buf, (size_t)size, "%.3gk", v / 1e3);
  else
    snprintf(buf, (size_t)size, "%.3g", v);
}

void us_svg_format_value(char *buf, int size, double v, us_svg_format f) {
  char tmp[32];
  switch (f) {
    case US_SVG_PERCENT:
      snprintf(buf, (size_t)size, "%.*f%%", fabs(v * 100 - round(v * 100)) < 1e-9 ? 0 : 1, v * 100);
      return;
    case US_SVG_USD:
      if (v != 0 && fabs(v) < 0.01) { /* plain, never 1e-05: "$0.00001" */
        int decimals = 1 - (int)floor(log10(fabs(v)));
        snprintf(tmp, sizeof tmp, "%.*f", decimals > 12 ? 12 : decimals, v);
      } else
        compact(tmp, sizeof tmp, v);
      snprintf(buf, (size_t)size, "%s$%s", v < 0 ? "-" : "", tmp + (v < 0));
      return;
    case US_SVG_COUNT:
    case US_SVG_NUMBER:
      compact(buf, size, v);
      return;
  }
}

void us_svg_chart_init(us_svg_chart *c) {
  memset(c, 0, sizeof *c);
  c->width = 640;
  c->height = 320;
  c->x_min = c->x_max = c->y_min = c->y_max = NAN;
}

/* ---- axes ---------------------------------------------------------------------------- */

typedef struct axis {
  bool log;
  double lo, hi; /* data range (log10 of it on a log axis) */
  double pixel_lo, pixel_hi;
  double ticks[24];
  int n_ticks;
} axis;

static bool usable(double v, bool log) {
  return isfinite(v) && (!log || v > 0);
}

static double to_axis(double v, bool log) {
  return log ? log10(v) : v;
}

static double nice_step(double raw) {
  double p = pow(10, floor(log10(raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

/* Range and ticks from the data extremes; fixed ends (non-NaN) are kept as given. */
static void axis_fit(axis *a, double lo, double hi, double fixed_lo, double fixed_hi) {
  if (!isnan(fixed_lo) && usable(fixed_lo, a->log)) lo = to_axis(fixed_lo, a->log);
  if (!isnan(fixed_hi) && usable(fixed_hi, a->log)) hi = to_axis(fixed_hi, a->log);
  if (!(lo <= hi)) lo = 0, hi = 1;
  if (hi - lo < 1e-12) { /* one value: widen around it */
    double pad = a->log ? 1 : (fabs(lo) > 0 ? fabs(lo) * 0.1 : 1);
    lo -= pad;
    hi += pad;
  }
  double step = a->log ? (hi - lo > 8 ? 2 : 1) : nice_step((hi - lo) / 5);
  if (a->log) {
    lo = floor(lo), hi = ceil(hi);
  } else {
    if (isnan(fixed_lo)) lo = floor(lo / step + 1e-9) * step;
    if (isnan(fixed_hi)) hi = ceil(hi / step - 1e-9) * step;
  }
  a->lo = lo;
  a->hi = hi;
  a->n_ticks = 0;
  for (double t = ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9 && a->n_ticks < 24;
       t += step)
    a->ticks[a->n_ticks++] = fabs(t) < step * 1e-9 ? 0 : t;
}

static double axis_pixel(const axis *a, double v) {
  double t = (to_axis(v, a->log) - a->lo) / (a->hi - a->lo);
  return a->pixel_lo + t * (a->pixel_hi - a->pixel_lo);
}

static void data_range(const us_svg_chart *c, bool for_x, bool log, double *lo, double *hi) {
  *lo = INFINITY;
  *hi = -INFINITY;
  for (int l = 0; l < c->n_lines; l++)
    for (int i = 0; i < c->lines[l].n; i++) {
      double x = c->lines[l].x[i], y = c->lines[l].y[i];
      if (!usable(x, c->log_x) || !usable(y, c->log_y)) continue;
      double v = to_axis(for_x ? x : y, log);
      *lo = fmin(*lo, v);
      *hi = fmax(*hi, v);
    }
  for (int m = 0; m < c->n_marks; m++) {
    double v = for_x ? c->marks[m].x : c->marks[m].y;
    if (usable(v, log)) *lo = fmin(*lo, to_axis(v, log)), *hi = fmax(*hi, to_axis(v, log));
  }
  for (int r = 0; r < c->n_rules; r++) {
    if (c->rules[r].vertical != for_x || !usable(c->rules[r].at, log)) continue;
    *lo = fmin(*lo, to_axis(c->rules[r].at, log));
    *hi = fmax(*hi, to_axis(c->rules[r].at, log));
  }
}

/* ---- drawing ------------------------------------------------------------------------- */

static us_status text(us_buf *o, double x, double y, const char *anchor, const char *extra,
                      const char *s) {
  us_status st = us_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s>", x, y, anchor,
                               extra ? extra : "");
  if (st == US_OK) st = us_svg_escape(o, s);
  if (st == US_OK) st = us_buf_puts(o, "</text>");
  return st;
}

static us_status draw_axes(us_buf *o, const us_svg_chart *c, const axis *ax, const axis *ay) {
  us_status st = US_OK;
  char label[48];
  for (int i = 0; i < ay->n_ticks && st == US_OK; i++) {
    double v = ay->log ? pow(10, ay->ticks[i]) : ay->ticks[i], py = axis_pixel(ay, v);
    us_svg_format_value(label, sizeof label, v, c->y_format);
    st = us_buf_printf(o, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>",
                       ax->pixel_lo, ax->pixel_hi, py, py);
    if (st == US_OK) st = text(o, ax->pixel_lo - 6, py + 4, "end", " class=\"tick\"", label);
  }
  for (int i = 0; i < ax->n_ticks && st == US_OK; i++) {
    double v = ax->log ? pow(10, ax->ticks[i]) : ax->ticks[i], px = axis_pixel(ax, v);
    us_svg_format_value(label, sizeof label, v, c->x_format);
    st = us_buf_printf(o, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>",
                       px, px, ay->pixel_hi, ay->pixel_lo);
    if (st == US_OK) st = text(o, px, ay->pixel_lo + 16, "middle", " class=\"tick\"", label);
  }
  if (st == US_OK)
    st = us_buf_printf(o,
                       "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                       "height=\"%.1f\"/>",
                       ax->pixel_lo, ay->pixel_hi, ax->pixel_hi - ax->pixel_lo,
                       ay->pixel_lo - ay->pixel_hi);
  if (st == US_OK && c->x_label)
    st = text(o, (ax->pixel_lo + ax->pixel_hi) / 2, c->height - 6, "middle", " class=\"axis\"",
              c->x_label);
  if (st == US_OK && c->y_label) {
    char transform[80];
    double cy = (ay->pixel_lo + ay->pixel_hi) / 2;
    snprintf(transform, sizeof transform, " class=\"axis\" transform=\"rotate(-90 14 %.1f)\"", cy);
    st = text(o, 14, cy, "middle", transform, c->y_label);
  }
  return st;
}

static us_status draw_line(us_buf *o, const us_svg_chart *c, const us_svg_line *l, const axis *ax,
                           const axis *ay) {
  int stride = l->n > MAX_PLOTTED ? (l->n + MAX_PLOTTED - 1) / MAX_PLOTTED : 1;
  us_status st = us_buf_printf(o, "<path class=\"series\" stroke=\"%s\"%s d=\"", l->color,
                               l->dashed ? " stroke-dasharray=\"6 4\"" : "");
  bool pen_down = false;
  for (int i = 0; i < l->n && st == US_OK; i++) {
    if (i % stride != 0 && i != l->n - 1) continue;
    if (!usable(l->x[i], c->log_x) || !usable(l->y[i], c->log_y)) {
      pen_down = false;
      continue;
    }
    st = us_buf_printf(o, "%s%.1f %.1f ", pen_down ? "L" : "M", axis_pixel(ax, l->x[i]),
                       axis_pixel(ay, l->y[i]));
    pen_down = true;
  }
  if (st == US_OK) st = us_buf_puts(o, "\"/>");
  if (st == US_OK && l->n == 1 && usable(l->x[0], c->log_x) && usable(l->y[0], c->log_y))
    st = us_buf_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>",
                       axis_pixel(ax, l->x[0]), axis_pixel(ay, l->y[0]), l->color);
  return st;
}

static us_status draw_rules_and_marks(us_buf *o, const us_svg_chart *c, const axis *ax,
                                      const axis *ay) {
  us_status st = US_OK;
  for (int r = 0; r < c->n_rules && st == US_OK; r++) {
    const us_svg_rule *u = &c->rules[r];
    if (!usable(u->at, u->vertical ? c->log_x : c->log_y)) continue;
    if (u->vertical) {
      double px = axis_pixel(ax, u->at);
      bool right = px > (ax->pixel_lo + ax->pixel_hi) / 2;
      st = us_buf_printf(o,
                         "<line class=\"rule\" stroke=\"%s\" x1=\"%.1f\" x2=\"%.1f\" "
                         "y1=\"%.1f\" y2=\"%.1f\"/>",
                         u->color, px, px, ay->pixel_hi, ay->pixel_lo);
      if (st == US_OK && u->text)
        st = text(o, px + (right ? -4 : 4), u->label_low ? ay->pixel_lo - 6 : ay->pixel_hi + 12,
                  right ? "end" : "start", " class=\"note\"", u->text);
    } else {
      double py = axis_pixel(ay, u->at);
      st = us_buf_printf(o,
                         "<line class=\"rule\" stroke=\"%s\" x1=\"%.1f\" x2=\"%.1f\" "
                         "y1=\"%.1f\" y2=\"%.1f\"/>",
                         u->color, ax->pixel_lo, ax->pixel_hi, py, py);
      if (st == US_OK && u->text)
        st = u->label_low ? text(o, ax->pixel_lo + 4, py + 14, "start", " class=\"note\"", u->text)
                          : text(o, ax->pixel_hi - 4, py - 4, "end", " class=\"note\"", u->text);
    }
  }
  for (int m = 0; m < c->n_marks && st == US_OK; m++) {
    const us_svg_mark *k = &c->marks[m];
    if (!usable(k->x, c->log_x) || !usable(k->y, c->log_y)) continue;
    double px = axis_pixel(ax, k->x), py = axis_pixel(ay, k->y);
    /* above-left of a rising line is usually empty; to the right if there is no room */
    bool room_left = k->text && px - 10 - 6.5 * (double)strlen(k->text) > ax->pixel_lo;
    st = us_buf_printf(o, "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>",
                       px, py, k->color);
    if (st == US_OK && k->text)
      st = text(o, room_left ? px - 10 : px + 10, py - 10, room_left ? "end" : "start",
                " class=\"note\"", k->text);
  }
  return st;
}

/* Legend entries run left to right and wrap to a new row (16 px lower) when the next one would
 * pass the right edge. With draw false, only counts the rows (the plot starts below them). */
static int legend_layout(us_buf *o, const us_svg_chart *c, double left, bool draw, us_status *st) {
  double x = left, y = 14;
  int rows = 1;
  for (int l = 0; l < c->n_lines && *st == US_OK; l++) {
    const us_svg_line *line = &c->lines[l];
    if (!line->name) continue;
    double w = 36 + 6.5 * (double)strlen(line->name);
    if (x > left && x + w - 13 > c->width) {
      x = left;
      y += 16;
      rows++;
    }
    if (draw) {
      *st = us_buf_printf(o,
                          "<line class=\"series\" stroke=\"%s\"%s x1=\"%.1f\" x2=\"%.1f\" "
                          "y1=\"%.0f\" y2=\"%.0f\"/>",
                          line->color, line->dashed ? " stroke-dasharray=\"6 4\"" : "", x, x + 18,
                          y, y);
      if (*st == US_OK) *st = text(o, x + 23, y + 4, "start", " class=\"legend\"", line->name);
    }
    x += w;
  }
  return rows;
}

static us_status draw_legend(us_buf *o, const us_svg_chart *c, double left) {
  us_status st = US_OK;
  legend_layout(o, c, left, true, &st);
  return st;
}

us_status us_svg_line_chart(us_buf *out, const us_svg_chart *c, us_err *err) {
  axis ax = {.log = c->log_x}, ay = {.log = c->log_y};
  double lo, hi;
  data_range(c, true, c->log_x, &lo, &hi);
  axis_fit(&ax, lo, hi, c->x_min, c->x_max);
  data_range(c, false, c->log_y, &lo, &hi);
  axis_fit(&ay, lo, hi, c->y_min, c->y_max);
  ax.pixel_lo = 68;
  ax.pixel_hi = c->width - 16;
  ay.pixel_lo = c->height - 42; /* y grows downwards: the bottom of the plot is the low end */
  us_status counted = US_OK;
  ay.pixel_hi = 30 + 16 * (legend_layout(NULL, c, ax.pixel_lo, false, &counted) - 1);
  us_status st = us_buf_printf(out,
                               "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
                               "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
                               c->width, c->height);
  if (st == US_OK) st = us_svg_escape(out, c->title);
  if (st == US_OK) st = us_buf_puts(out, "\"><title>");
  if (st == US_OK) st = us_svg_escape(out, c->title);
  if (st == US_OK) st = us_buf_puts(out, "</title>");
  if (st == US_OK) st = draw_axes(out, c, &ax, &ay);
  for (int l = 0; l < c->n_lines && st == US_OK; l++)
    st = draw_line(out, c, &c->lines[l], &ax, &ay);
  if (st == US_OK) st = draw_rules_and_marks(out, c, &ax, &ay);
  if (st == US_OK) st = draw_legend(out, c, ax.pixel_lo);
  if (st == US_OK) st = us_buf_puts(out, "</svg>\n");
  if (st != US_OK)
    return us_err_set(err, st, "chart \"%s\": out of memory", c->title ? c->title : "");
  return US_OK;
}

/* Copies at most max_bytes of s into buf without splitting a UTF-8 sequence, adding "..." when
 * it was cut. */
static void shorten(char *buf, size_t size, const char *s, size_t max_bytes) {
  size_t len = strlen(s);
  if (len <= max_bytes && len < size) {
    memcpy(buf, s, len + 1);
    return;
  }
  size_t cut = max_bytes < size - 4 ? max_bytes : size - 4;
  while (cut > 0 && US_UTF8_IS_CONTINUATION(s[cut])) cut--;
  memcpy(buf, s, cut);
  memcpy(buf + cut, "...", 4);
}

static const char *bar_color(double v) {
  return v >= 0.9 ? "#2f855a" : v >= 0.7 ? "#3b6ea8" : v >= 0.5 ? "#c27c0e" : "#c53030";
}

us_status us_svg_bar_chart(us_buf *out, const char *title, const char *const *labels,
                           const double *values, int n, int width, us_svg_format value_format,
                           us_err *err) {
  const double row = 20, top = 8, label_w = width * 0.38, value_w = 52;
  double bar_w = width - label_w - value_w - 12;
  int height = (int)(top + row * (n > 0 ? n : 1) + 8);
  char label[128], value[48];
  us_status st = us_buf_printf(out,
                               "<svg class=\"chart bars\" xmlns=\"http://www.w3.org/2000/svg\" "
                               "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
                               width, height);
  if (st == US_OK) st = us_svg_escape(out, title);
  if (st == US_OK) st = us_buf_puts(out, "\"><title>");
  if (st == US_OK) st = us_svg_escape(out, title);
  if (st == US_OK) st = us_buf_puts(out, "</title>");
  for (int i = 0; i < n && st == US_OK; i++) {
    double v = isfinite(values[i]) ? fmin(fmax(values[i], 0), 1) : 0, y = top + row * i;
    shorten(label, sizeof label, labels[i] ? labels[i] : "", (size_t)(label_w / 6.6));
    us_svg_format_value(value, sizeof value, values[i], value_format);
    st = us_buf_puts(out, "<g><title>");
    if (st == US_OK) st = us_svg_escape(out, labels[i]);
    if (st == US_OK) st = us_buf_printf(out, ": %s</title>", value);
    if (st == US_OK) st = text(out, label_w - 8, y + 14, "end", " class=\"tick\"", label);
    if (st == US_OK)
      st = us_buf_printf(out,
                         "<rect class=\"track\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                         "height=\"%.1f\"/><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                         "height=\"%.1f\" fill=\"%s\"/>",
                         label_w, y + 3, bar_w, row - 6, label_w, y + 3, bar_w * v, row - 6,
                         bar_color(v));
    if (st == US_OK) st = text(out, label_w + bar_w + 6, y + 14, "start", " class=\"tick\"", value);
    if (st == US_OK) st = us_buf_puts(out, "</g>");
  }
  if (st == US_OK) st = us_buf_puts(out, "</svg>\n");
  if (st != US_OK)
    return us_err_set(err, st, "bar chart \"%s\": out of memory", title ? title : "");
  return US_OK;
}
