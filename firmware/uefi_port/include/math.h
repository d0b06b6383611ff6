/* The double-precision libm subset MicroPython uses, provided by lib/libm_dbl. */
#ifndef CB_MATH_H
#define CB_MATH_H
typedef double double_t;
typedef float float_t;
#ifndef NAN
#define NAN (__builtin_nanf(""))
#endif
#ifndef INFINITY
#define INFINITY (__builtin_inff())
#endif
#define HUGE_VAL (__builtin_huge_val())
#define M_PI 3.14159265358979323846
#define M_E 2.7182818284590452354
#define FP_NAN 0
#define FP_INFINITE 1
#define FP_ZERO 2
#define FP_SUBNORMAL 3
#define FP_NORMAL 4
#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf(x)
#define isfinite(x) __builtin_isfinite(x)
#define signbit(x) __builtin_signbit(x)
#define fpclassify(x) __builtin_fpclassify(FP_NAN, FP_INFINITE, FP_NORMAL, FP_SUBNORMAL, FP_ZERO, x)
/* With NDEBUG libm_dbl's copysign.c compiles to nothing: use the builtins. */
#define copysign(x, y) __builtin_copysign(x, y)
#define nan(s) __builtin_nan(s)
double sqrt(double); double pow(double, double); double exp(double); double expm1(double);
double log(double); double log2(double); double log10(double); double log1p(double);
double cosh(double); double sinh(double); double tanh(double); double acosh(double); double asinh(double);
double atanh(double); double cos(double); double sin(double); double tan(double); double acos(double);
double asin(double); double atan(double); double atan2(double, double); double ceil(double);
double floor(double); double fmod(double, double); double frexp(double, int *); double ldexp(double, int);
double modf(double, double *); double trunc(double); double nearbyint(double); double rint(double);
double round(double); double erf(double); double erfc(double); double tgamma(double); double lgamma(double);
double scalbn(double, int); double fabs(double);
float sqrtf(float); float nanf(const char *);
#endif
