//! OpenCV's non-antialiased drawing primitives (8-connected, integer and 16.16 fixed point),
//! written from their published behaviour so the pose render is the reference's pixel for
//! pixel: DWPose draws with `ellipse2Poly` + `fillConvexPoly`, `circle` and `line`.

use crate::frame::RgbImage;

const XY_SHIFT: u32 = 16;
const XY_ONE: i64 = 1 << XY_SHIFT;

/// OpenCV's sine table: sin of each whole degree 0..=450, to 7 decimals, as f32.
fn sin_table(deg: usize) -> f32 {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=450)
            .map(|d| {
                let s = (d as f64).to_radians().sin();
                format!("{s:.7}").parse::<f32>().expect("a number")
            })
            .collect()
    })[deg]
}

/// `cvRound`: nearest, ties to even.
fn cv_round(v: f64) -> i64 {
    v.round_ties_even() as i64
}

fn hline(img: &mut RgbImage, y: i64, x0: i64, x1: i64, c: [u8; 3]) {
    for x in x0..=x1 {
        img.put_rgb(x as usize, y as usize, c);
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as usize) < img.width && (y as usize) < img.height {
        img.put_rgb(x as usize, y as usize, c);
    }
}

/// The closed polygon of an elliptic outline, whole degrees, rounded to integer points with
/// consecutive repeats dropped (`cv::ellipse2Poly`, full turn, step 1).
pub fn ellipse_poly(centre: (i64, i64), axes: (i64, i64), angle: i64) -> Vec<(i64, i64)> {
    let angle = angle.rem_euclid(360) as usize;
    let (alpha, beta) = (sin_table(450 - angle) as f64, sin_table(angle) as f64);
    let mut pts: Vec<(i64, i64)> = Vec::new();
    for a in 0..=360usize {
        let x = axes.0 as f64 * sin_table(450 - a) as f64;
        let y = axes.1 as f64 * sin_table(a) as f64;
        let p = (
            cv_round(centre.0 as f64 + x * alpha - y * beta),
            cv_round(centre.1 as f64 + x * beta + y * alpha),
        );
        if pts.last() != Some(&p) {
            pts.push(p);
        }
    }
    if pts.len() == 1 {
        pts = vec![centre, centre];
    }
    pts
}

/// Cohen-Sutherland clip to [0, w) x [0, h) as OpenCV's `clipLine`; false when outside.
fn clip_line(w: i64, h: i64, p1: &mut (i64, i64), p2: &mut (i64, i64)) -> bool {
    let (right, bottom) = (w - 1, h - 1);
    let code = |p: &(i64, i64)| {
        (p.0 < 0) as i32
            + (p.0 > right) as i32 * 2
            + (p.1 < 0) as i32 * 4
            + (p.1 > bottom) as i32 * 8
    };
    let (mut c1, mut c2) = (code(p1), code(p2));
    if (c1 & c2) == 0 && (c1 | c2) != 0 {
        if c1 & 12 != 0 {
            let a = if c1 < 8 { 0 } else { bottom };
            p1.0 += ((a - p1.1) as f64 * (p2.0 - p1.0) as f64 / (p2.1 - p1.1) as f64) as i64;
            p1.1 = a;
            c1 = (p1.0 < 0) as i32 + (p1.0 > right) as i32 * 2;
        }
        if c2 & 12 != 0 {
            let a = if c2 < 8 { 0 } else { bottom };
            p2.0 += ((a - p2.1) as f64 * (p2.0 - p1.0) as f64 / (p2.1 - p1.1) as f64) as i64;
            p2.1 = a;
            c2 = (p2.0 < 0) as i32 + (p2.0 > right) as i32 * 2;
        }
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 != 0 {
                let a = if c1 == 1 { 0 } else { right };
                p1.1 += ((a - p1.0) as f64 * (p2.1 - p1.1) as f64 / (p2.0 - p1.0) as f64) as i64;
                p1.0 = a;
                c1 = 0;
            }
            if c2 != 0 {
                let a = if c2 == 1 { 0 } else { right };
                p2.1 += ((a - p2.0) as f64 * (p2.1 - p1.1) as f64 / (p2.0 - p1.0) as f64) as i64;
                p2.0 = a;
                c2 = 0;
            }
        }
    }
    (c1 | c2) == 0
}

/// An 8-connected Bresenham line between integer points, left to right (`LineIterator`).
pub fn line8(img: &mut RgbImage, mut p1: (i64, i64), mut p2: (i64, i64), c: [u8; 3]) {
    let (w, h) = (img.width as i64, img.height as i64);
    let inside = |p: &(i64, i64)| p.0 >= 0 && p.0 < w && p.1 >= 0 && p.1 < h;
    // Clipped only when an end lies outside, as OpenCV's line iterator does.
    let both_inside = inside(&p1) && inside(&p2);
    if !both_inside && !clip_line(w, h, &mut p1, &mut p2) {
        return;
    }
    if p2.0 < p1.0 {
        std::mem::swap(&mut p1, &mut p2);
    }
    let mut dx = p2.0 - p1.0;
    let mut dy = p2.1 - p1.1;
    let ystep = if dy < 0 { -1 } else { 1 };
    dy = dy.abs();
    // Major step along x, minor along y; swapped for steep lines.
    let (mut major, mut minor) = ((1i64, 0i64), (0i64, ystep));
    if dy > dx {
        std::mem::swap(&mut dx, &mut dy);
        std::mem::swap(&mut major, &mut minor);
    }
    let mut err = dx - 2 * dy;
    let (mut x, mut y) = p1;
    for _ in 0..=dx {
        put(img, x, y, c);
        let neg = err < 0;
        err += -2 * dy + if neg { 2 * dx } else { 0 };
        x += major.0 + if neg { minor.0 } else { 0 };
        y += major.1 + if neg { minor.1 } else { 0 };
    }
}

/// A line between 16.16 fixed-point points (`Line2`).
fn line_fixed(img: &mut RgbImage, mut p1: (i64, i64), mut p2: (i64, i64), c: [u8; 3]) {
    let (w, h) = (img.width as i64, img.height as i64);
    if !clip_line(w << XY_SHIFT, h << XY_SHIFT, &mut p1, &mut p2) {
        return;
    }
    let (dx, dy) = (p2.0 - p1.0, p2.1 - p1.1);
    let (ax, ay) = (dx.abs(), dy.abs());
    let (x_step, y_step, ecount);
    if ax > ay {
        if dx < 0 {
            std::mem::swap(&mut p1, &mut p2);
        }
        let dy = p2.1 - p1.1;
        x_step = XY_ONE;
        y_step = (dy << XY_SHIFT) / (ax | 1);
        ecount = (p2.0 - p1.0) >> XY_SHIFT;
    } else {
        if dy < 0 {
            std::mem::swap(&mut p1, &mut p2);
        }
        let dx = p2.0 - p1.0;
        x_step = (dx << XY_SHIFT) / (ay | 1);
        y_step = XY_ONE;
        ecount = (p2.1 - p1.1) >> XY_SHIFT;
    }
    p1.0 += XY_ONE >> 1;
    p1.1 += XY_ONE >> 1;
    put(
        img,
        (p2.0 + (XY_ONE >> 1)) >> XY_SHIFT,
        (p2.1 + (XY_ONE >> 1)) >> XY_SHIFT,
        c,
    );
    let mut n = ecount;
    if ax > ay {
        let mut x = p1.0 >> XY_SHIFT;
        let mut y = p1.1;
        while n >= 0 {
            put(img, x, y >> XY_SHIFT, c);
            x += 1;
            y += y_step;
            n -= 1;
        }
    } else {
        let mut x = p1.0;
        let mut y = p1.1 >> XY_SHIFT;
        while n >= 0 {
            put(img, x >> XY_SHIFT, y, c);
            x += x_step;
            y += 1;
            n -= 1;
        }
    }
}

/// A filled convex polygon, outline included (`FillConvexPoly`, 8-connected); `shift` is
/// the number of fractional bits in the vertices (0 or 16).
pub fn fill_convex_poly(img: &mut RgbImage, v: &[(i64, i64)], c: [u8; 3], shift: u32) {
    let npts = v.len();
    if npts == 0 {
        return;
    }
    let (w, h) = (img.width as i64, img.height as i64);
    let delta: i64 = (1i64 << shift) >> 1;
    let half = XY_ONE >> 1;
    let up = XY_SHIFT - shift;
    let mut p0 = (v[npts - 1].0 << up, v[npts - 1].1 << up);
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (v[0].0, v[0].0, v[0].1, v[0].1);
    let mut imin = 0usize;
    for (i, &q) in v.iter().enumerate() {
        if q.1 < ymin {
            ymin = q.1;
            imin = i;
        }
        ymax = ymax.max(q.1);
        xmax = xmax.max(q.0);
        xmin = xmin.min(q.0);
        let p = (q.0 << up, q.1 << up);
        if shift == 0 {
            line8(
                img,
                (p0.0 >> XY_SHIFT, p0.1 >> XY_SHIFT),
                (p.0 >> XY_SHIFT, p.1 >> XY_SHIFT),
                c,
            );
        } else {
            line_fixed(img, p0, p, c);
        }
        p0 = p;
    }
    let (xmin, xmax) = ((xmin + delta) >> shift, (xmax + delta) >> shift);
    let (ymin, ymax) = ((ymin + delta) >> shift, (ymax + delta) >> shift);
    if npts < 3 || xmax < 0 || ymax < 0 || xmin >= w || ymin >= h {
        return;
    }
    let ymax = ymax.min(h - 1);
    // Two edges walk down from the top vertex, one each way round.
    struct Edge {
        idx: usize,
        di: usize,
        x: i64,
        dx: i64,
        ye: i64,
    }
    let mut edge = [
        Edge {
            idx: imin,
            di: 1,
            x: -XY_ONE,
            dx: 0,
            ye: ymin,
        },
        Edge {
            idx: imin,
            di: npts - 1,
            x: -XY_ONE,
            dx: 0,
            ye: ymin,
        },
    ];
    let mut edges = npts as i64;
    let mut y = ymin;
    loop {
        for e in edge.iter_mut() {
            if y >= e.ye {
                let mut idx0 = e.idx;
                let mut idx = (idx0 + e.di) % npts;
                loop {
                    edges -= 1;
                    if edges < 0 {
                        break;
                    }
                    let ty = (v[idx].1 + delta) >> shift;
                    if ty > y {
                        let xs = v[idx0].0 << up;
                        let xe = v[idx].0 << up;
                        e.ye = ty;
                        e.dx = ((xe - xs) * 2 + (ty - y)) / (2 * (ty - y));
                        e.x = xs;
                        e.idx = idx;
                        break;
                    }
                    idx0 = idx;
                    idx = (idx + e.di) % npts;
                }
            }
        }
        if edges < 0 {
            break;
        }
        if y >= 0 {
            let (l, r) = if edge[0].x > edge[1].x {
                (1, 0)
            } else {
                (0, 1)
            };
            let mut x1 = (edge[l].x + half) >> XY_SHIFT;
            let mut x2 = (edge[r].x + half) >> XY_SHIFT;
            if x2 >= 0 && x1 < w {
                x1 = x1.max(0);
                x2 = x2.min(w - 1);
                hline(img, y, x1, x2, c);
            }
        }
        edge[0].x += edge[0].dx;
        edge[1].x += edge[1].dx;
        y += 1;
        if y > ymax {
            break;
        }
    }
}

/// A filled circle (`cv::circle` with thickness -1, 8-connected: the midpoint algorithm).
pub fn fill_circle(img: &mut RgbImage, centre: (i64, i64), radius: i64, c: [u8; 3]) {
    let (w, h) = (img.width as i64, img.height as i64);
    let (cx, cy) = centre;
    let (mut err, mut dx, mut dy, mut plus, mut minus) = (0i64, radius, 0i64, 1i64, 2 * radius - 1);
    let span = |img: &mut RgbImage, y: i64, x0: i64, x1: i64| {
        if y >= 0 && y < h && x1 >= 0 && x0 < w {
            hline(img, y, x0.max(0), x1.min(w - 1), c);
        }
    };
    while dx >= dy {
        let (y11, y12, y21, y22) = (cy - dy, cy + dy, cy - dx, cy + dx);
        let (x11, x12, x21, x22) = (cx - dx, cx + dx, cx - dy, cx + dy);
        if x11 < w && x12 >= 0 && y21 < h && y22 >= 0 {
            span(img, y11, x11, x12);
            span(img, y12, x11, x12);
            span(img, y21, x21, x22);
            span(img, y22, x21, x22);
        }
        dy += 1;
        err += plus;
        plus += 2;
        if err > 0 {
            err -= minus;
            dx -= 1;
            minus -= 2;
        }
    }
}

/// `cv::line` between integer points, `thickness` > 1: a filled quad in 16.16 fixed point
/// plus round caps.
pub fn thick_line(img: &mut RgbImage, p0: (i64, i64), p1: (i64, i64), thickness: i64, c: [u8; 3]) {
    let (p0, p1) = (
        (p0.0 << XY_SHIFT, p0.1 << XY_SHIFT),
        (p1.0 << XY_SHIFT, p1.1 << XY_SHIFT),
    );
    let inv = 1.0 / XY_ONE as f64;
    let dx = (p0.0 - p1.0) as f64 * inv;
    let dy = (p1.1 - p0.1) as f64 * inv;
    let r = dx * dx + dy * dy;
    let odd = thickness & 1;
    let t = thickness << (XY_SHIFT - 1);
    if r.abs() > f64::EPSILON {
        let r = (t as f64 + odd as f64 * XY_ONE as f64 * 0.5) / r.sqrt();
        let d = (cv_round(dy * r), cv_round(dx * r));
        let quad = [
            (p0.0 + d.0, p0.1 + d.1),
            (p0.0 - d.0, p0.1 - d.1),
            (p1.0 - d.0, p1.1 - d.1),
            (p1.0 + d.0, p1.1 + d.1),
        ];
        fill_convex_poly(img, &quad, c, XY_SHIFT);
    }
    for p in [p0, p1] {
        let centre = (
            (p.0 + (XY_ONE >> 1)) >> XY_SHIFT,
            (p.1 + (XY_ONE >> 1)) >> XY_SHIFT,
        );
        fill_circle(img, centre, (t + (XY_ONE >> 1)) >> XY_SHIFT, c);
    }
}
