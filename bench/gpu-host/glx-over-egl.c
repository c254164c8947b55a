// glx-over-egl ("glxegl" in its messages): a stand-in libGL.so.1 for ANGLE's GLX back end (as
// built into headless-gl) that serves the GLX calls ANGLE makes through EGL, so that the GL
// context comes from a GPU's EGL driver (EGL_EXT_platform_device) when the X server's GLX cannot
// reach the GPU (Xvfb). ANGLE loads all
// GLX functions through glXGetProcAddress, so only glXGetProcAddress(ARB) is exported; GL
// functions are looked up with eglGetProcAddress. One FBConfig (RGBA8, D24S8) is offered;
// pbuffers are EGL pbuffers; windows and pixmaps are not supported.
// Environment: GLXEGL_PLATFORM=device (default) | surfaceless | default, GLXEGL_DEVICE=index,
// GLXEGL_DEBUG=1 to log calls.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <GL/glx.h>
#include <EGL/egl.h>
#include <EGL/eglext.h>

static int debug = -1;
#define LOG(...) do { if (debug) fprintf(stderr, "glxegl: " __VA_ARGS__); } while (0)

static void *egl_lib;
static EGLDisplay edpy = EGL_NO_DISPLAY;
static EGLConfig ecfg;
static int ready = 0;
static struct __GLXFBConfigRec { int id; } the_config = {1};

#define EGLFN(ret, name, args) static ret (*p_##name) args
EGLFN(EGLBoolean, eglInitialize, (EGLDisplay, EGLint *, EGLint *));
EGLFN(EGLBoolean, eglBindAPI, (EGLenum));
EGLFN(EGLBoolean, eglChooseConfig, (EGLDisplay, const EGLint *, EGLConfig *, EGLint, EGLint *));
EGLFN(EGLContext, eglCreateContext, (EGLDisplay, EGLConfig, EGLContext, const EGLint *));
EGLFN(EGLBoolean, eglDestroyContext, (EGLDisplay, EGLContext));
EGLFN(EGLSurface, eglCreatePbufferSurface, (EGLDisplay, EGLConfig, const EGLint *));
EGLFN(EGLBoolean, eglDestroySurface, (EGLDisplay, EGLSurface));
EGLFN(EGLBoolean, eglMakeCurrent, (EGLDisplay, EGLSurface, EGLSurface, EGLContext));
EGLFN(EGLContext, eglGetCurrentContext, (void));
EGLFN(EGLSurface, eglGetCurrentSurface, (EGLint));
EGLFN(EGLBoolean, eglQuerySurface, (EGLDisplay, EGLSurface, EGLint, EGLint *));
EGLFN(EGLint, eglGetError, (void));
EGLFN(const char *, eglQueryString, (EGLDisplay, EGLint));
EGLFN(EGLDisplay, eglGetDisplay, (EGLNativeDisplayType));
EGLFN(void *, eglGetProcAddress, (const char *));

static int init(void) {
  if (ready) return ready > 0;
  if (debug < 0) debug = getenv("GLXEGL_DEBUG") != NULL;
  ready = -1;
  egl_lib = dlopen("libEGL.so.1", RTLD_NOW | RTLD_LOCAL); // local: headless-gl's own (ANGLE) egl* symbols must keep binding to ANGLE
  if (!egl_lib) { fprintf(stderr, "glxegl: %s\n", dlerror()); return 0; }
#define LOAD(name) if (!(p_##name = dlsym(egl_lib, #name))) { fprintf(stderr, "glxegl: no " #name "\n"); return 0; }
  LOAD(eglInitialize) LOAD(eglBindAPI) LOAD(eglChooseConfig) LOAD(eglCreateContext) LOAD(eglDestroyContext)
  LOAD(eglCreatePbufferSurface) LOAD(eglDestroySurface) LOAD(eglMakeCurrent) LOAD(eglGetCurrentContext)
  LOAD(eglGetCurrentSurface) LOAD(eglQuerySurface) LOAD(eglGetError) LOAD(eglQueryString) LOAD(eglGetDisplay)
  LOAD(eglGetProcAddress)
  const char *platform = getenv("GLXEGL_PLATFORM") ? getenv("GLXEGL_PLATFORM") : "device";
  PFNEGLGETPLATFORMDISPLAYEXTPROC getPlatformDisplay = (PFNEGLGETPLATFORMDISPLAYEXTPROC)p_eglGetProcAddress("eglGetPlatformDisplayEXT");
  if (!strcmp(platform, "device")) {
    PFNEGLQUERYDEVICESEXTPROC queryDevices = (PFNEGLQUERYDEVICESEXTPROC)p_eglGetProcAddress("eglQueryDevicesEXT");
    PFNEGLQUERYDEVICESTRINGEXTPROC queryDeviceString = (PFNEGLQUERYDEVICESTRINGEXTPROC)p_eglGetProcAddress("eglQueryDeviceStringEXT");
    EGLDeviceEXT devices[16];
    EGLint n = 0;
    if (!queryDevices || !getPlatformDisplay || !queryDevices(16, devices, &n) || n < 1) {
      fprintf(stderr, "glxegl: no EGL devices (eglQueryDevicesEXT %p, %d devices)\n", (void *)queryDevices, n);
      return 0;
    }
    int want = getenv("GLXEGL_DEVICE") ? atoi(getenv("GLXEGL_DEVICE")) : 0;
    for (int i = 0; i < n; i++) {
      const char *ext = queryDeviceString ? queryDeviceString(devices[i], EGL_EXTENSIONS) : NULL;
      fprintf(stderr, "glxegl: EGL device %d%s: %s\n", i, i == want ? " (used)" : "", ext ? ext : "(no extensions)");
    }
    if (want >= n) want = 0;
    edpy = getPlatformDisplay(EGL_PLATFORM_DEVICE_EXT, devices[want], NULL);
  } else if (!strcmp(platform, "surfaceless")) {
    edpy = getPlatformDisplay ? getPlatformDisplay(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL) : EGL_NO_DISPLAY;
  } else {
    edpy = p_eglGetDisplay(EGL_DEFAULT_DISPLAY);
  }
  EGLint major = 0, minor = 0;
  if (edpy == EGL_NO_DISPLAY || !p_eglInitialize(edpy, &major, &minor)) {
    fprintf(stderr, "glxegl: EGL display (%s) failed: 0x%x\n", platform, p_eglGetError());
    return 0;
  }
  p_eglBindAPI(EGL_OPENGL_API);
  const EGLint attribs[] = {EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT,
                            EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8, EGL_ALPHA_SIZE, 8,
                            EGL_DEPTH_SIZE, 24, EGL_STENCIL_SIZE, 8, EGL_NONE};
  EGLint count = 0;
  if (!p_eglChooseConfig(edpy, attribs, &ecfg, 1, &count) || count < 1) {
    fprintf(stderr, "glxegl: no EGL config (0x%x)\n", p_eglGetError());
    return 0;
  }
  fprintf(stderr, "glxegl: EGL %d.%d on the %s platform, vendor %s\n", major, minor, platform, p_eglQueryString(edpy, EGL_VENDOR));
  ready = 1;
  return 1;
}

static Bool x_QueryExtension(Display *d, int *e, int *v) { (void)d; if (e) *e = 0; if (v) *v = 0; return init(); }
static Bool x_QueryVersion(Display *d, int *ma, int *mi) { (void)d; *ma = 1; *mi = 4; return init(); }
static const char *x_QueryExtensionsString(Display *d, int s) { (void)d; (void)s; return "GLX_ARB_create_context GLX_ARB_create_context_profile"; }
static const char *x_GetClientString(Display *d, int name) { (void)d; return name == GLX_VENDOR ? "glxegl" : name == GLX_VERSION ? "1.4" : ""; }
static const char *x_QueryServerString(Display *d, int s, int name) { (void)s; return x_GetClientString(d, name); }

static GLXFBConfig *one_config(int *n) {
  GLXFBConfig *list = malloc(sizeof *list);
  list[0] = &the_config;
  *n = 1;
  return list;
}
static GLXFBConfig *x_ChooseFBConfig(Display *d, int s, const int *a, int *n) { (void)d; (void)s; (void)a; if (!init()) { *n = 0; return NULL; } return one_config(n); }
static GLXFBConfig *x_GetFBConfigs(Display *d, int s, int *n) { (void)d; (void)s; if (!init()) { *n = 0; return NULL; } return one_config(n); }
static int x_GetFBConfigAttrib(Display *d, GLXFBConfig c, int attr, int *v) {
  (void)c;
  switch (attr) {
    case GLX_RED_SIZE: case GLX_GREEN_SIZE: case GLX_BLUE_SIZE: case GLX_ALPHA_SIZE: case GLX_STENCIL_SIZE: *v = 8; break;
    case GLX_BUFFER_SIZE: *v = 32; break;
    case GLX_DEPTH_SIZE: *v = 24; break;
    case GLX_DOUBLEBUFFER: case GLX_X_RENDERABLE: *v = True; break;
    case GLX_RENDER_TYPE: *v = GLX_RGBA_BIT; break;
    case GLX_DRAWABLE_TYPE: *v = GLX_WINDOW_BIT | GLX_PBUFFER_BIT | GLX_PIXMAP_BIT; break;
    case GLX_CONFIG_CAVEAT: case GLX_TRANSPARENT_TYPE: *v = GLX_NONE; break;
    case GLX_X_VISUAL_TYPE: *v = GLX_TRUE_COLOR; break;
    case GLX_VISUAL_ID: *v = d ? (int)XVisualIDFromVisual(DefaultVisual(d, DefaultScreen(d))) : 0; break;
    case GLX_FBCONFIG_ID: *v = 1; break;
    case GLX_MAX_PBUFFER_WIDTH: case GLX_MAX_PBUFFER_HEIGHT: *v = 16384; break;
    case GLX_MAX_PBUFFER_PIXELS: *v = 16384 * 16384; break;
    default: *v = 0;
  }
  return Success;
}
static XVisualInfo *x_GetVisualFromFBConfig(Display *d, GLXFBConfig c) {
  (void)c;
  XVisualInfo tmpl;
  int n = 0;
  tmpl.visualid = XVisualIDFromVisual(DefaultVisual(d, DefaultScreen(d)));
  return XGetVisualInfo(d, VisualIDMask, &tmpl, &n);
}

static GLXContext make_context(GLXContext share, int major, int minor, int profile) {
  if (!init()) return NULL;
  EGLint attribs[16], i = 0;
  if (major > 0) {
    attribs[i++] = EGL_CONTEXT_MAJOR_VERSION; attribs[i++] = major;
    attribs[i++] = EGL_CONTEXT_MINOR_VERSION; attribs[i++] = minor;
  }
  if (profile) { attribs[i++] = EGL_CONTEXT_OPENGL_PROFILE_MASK; attribs[i++] = profile; }
  attribs[i] = EGL_NONE;
  EGLContext ctx = p_eglCreateContext(edpy, ecfg, share ? (EGLContext)share : EGL_NO_CONTEXT, attribs);
  LOG("context %d.%d profile %d -> %p (0x%x)\n", major, minor, profile, ctx, ctx ? 0 : p_eglGetError());
  return (GLXContext)ctx;
}
static GLXContext x_CreateContextAttribsARB(Display *d, GLXFBConfig c, GLXContext share, Bool direct, const int *a) {
  (void)d; (void)c; (void)direct;
  int major = 0, minor = 0, profile = 0;
  for (; a && a[0] != None; a += 2) {
    if (a[0] == GLX_CONTEXT_MAJOR_VERSION_ARB) major = a[1];
    else if (a[0] == GLX_CONTEXT_MINOR_VERSION_ARB) minor = a[1];
    else if (a[0] == GLX_CONTEXT_PROFILE_MASK_ARB) profile = a[1] & GLX_CONTEXT_CORE_PROFILE_BIT_ARB ? EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT : EGL_CONTEXT_OPENGL_COMPATIBILITY_PROFILE_BIT;
  }
  return make_context(share, major, minor, profile);
}
static GLXContext x_CreateNewContext(Display *d, GLXFBConfig c, int t, GLXContext share, Bool direct) { (void)d; (void)c; (void)t; (void)direct; return make_context(share, 0, 0, 0); }
static GLXContext x_CreateContext(Display *d, XVisualInfo *vi, GLXContext share, Bool direct) { (void)d; (void)vi; (void)direct; return make_context(share, 0, 0, 0); }
static void x_DestroyContext(Display *d, GLXContext c) { (void)d; if (init() && c) p_eglDestroyContext(edpy, (EGLContext)c); }

static GLXPbuffer x_CreatePbuffer(Display *d, GLXFBConfig c, const int *a) {
  (void)d; (void)c;
  if (!init()) return 0;
  int w = 1, h = 1;
  for (; a && a[0] != None; a += 2) {
    if (a[0] == GLX_PBUFFER_WIDTH && a[1] > 0) w = a[1];
    if (a[0] == GLX_PBUFFER_HEIGHT && a[1] > 0) h = a[1];
  }
  const EGLint attribs[] = {EGL_WIDTH, w, EGL_HEIGHT, h, EGL_NONE};
  EGLSurface s = p_eglCreatePbufferSurface(edpy, ecfg, attribs);
  LOG("pbuffer %dx%d -> %p\n", w, h, s);
  return (GLXPbuffer)(uintptr_t)s;
}
static void x_DestroyPbuffer(Display *d, GLXPbuffer p) { (void)d; if (init() && p) p_eglDestroySurface(edpy, (EGLSurface)(uintptr_t)p); }
static Bool x_MakeContextCurrent(Display *d, GLXDrawable draw, GLXDrawable read, GLXContext c) {
  (void)d;
  if (!init()) return False;
  EGLBoolean ok = c ? p_eglMakeCurrent(edpy, (EGLSurface)(uintptr_t)draw, (EGLSurface)(uintptr_t)read, (EGLContext)c)
                    : p_eglMakeCurrent(edpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
  if (!ok) fprintf(stderr, "glxegl: eglMakeCurrent failed: 0x%x\n", p_eglGetError());
  return ok ? True : False;
}
static Bool x_MakeCurrent(Display *d, GLXDrawable draw, GLXContext c) { return x_MakeContextCurrent(d, draw, draw, c); }
static GLXContext x_GetCurrentContext(void) { return init() ? (GLXContext)p_eglGetCurrentContext() : NULL; }
static GLXDrawable x_GetCurrentDrawable(void) { return init() ? (GLXDrawable)(uintptr_t)p_eglGetCurrentSurface(EGL_DRAW) : 0; }
static void x_QueryDrawable(Display *d, GLXDrawable dr, int attr, unsigned int *v) {
  (void)d;
  EGLint x = 0;
  if (init() && (attr == GLX_WIDTH || attr == GLX_HEIGHT)) p_eglQuerySurface(edpy, (EGLSurface)(uintptr_t)dr, attr == GLX_WIDTH ? EGL_WIDTH : EGL_HEIGHT, &x);
  *v = (unsigned int)x;
}
static void x_SwapBuffers(Display *d, GLXDrawable dr) { (void)d; (void)dr; }
static void x_WaitX(void) {}
static void x_WaitGL(void) {}
static GLXWindow x_CreateWindow(Display *d, GLXFBConfig c, Window w, const int *a) { (void)d; (void)c; (void)w; (void)a; fprintf(stderr, "glxegl: windows are not supported\n"); return 0; }
static void x_DestroyWindow(Display *d, GLXWindow w) { (void)d; (void)w; }

static const struct { const char *name; void *fn; } table[] = {
#define E(n) {"glX" #n, (void *)x_##n}
  E(QueryExtension), E(QueryVersion), E(QueryExtensionsString), E(GetClientString), E(QueryServerString),
  E(ChooseFBConfig), E(GetFBConfigs), E(GetFBConfigAttrib), E(GetVisualFromFBConfig),
  E(CreateContextAttribsARB), E(CreateNewContext), E(CreateContext), E(DestroyContext),
  E(CreatePbuffer), E(DestroyPbuffer), E(MakeContextCurrent), E(MakeCurrent), E(GetCurrentContext),
  E(GetCurrentDrawable), E(QueryDrawable), E(SwapBuffers), E(WaitX), E(WaitGL), E(CreateWindow), E(DestroyWindow),
#undef E
};

static void *lookup(const GLubyte *procName) {
  const char *name = (const char *)procName;
  if (debug < 0) debug = getenv("GLXEGL_DEBUG") != NULL;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (!strcmp(name, table[i].name)) return table[i].fn;
  if (!strncmp(name, "glX", 3)) { LOG("no %s\n", name); return NULL; }
  if (!init()) return NULL;
  return p_eglGetProcAddress(name);
}
__GLXextFuncPtr glXGetProcAddressARB(const GLubyte *name) { return (__GLXextFuncPtr)lookup(name); }
__GLXextFuncPtr glXGetProcAddress(const GLubyte *name) { return (__GLXextFuncPtr)lookup(name); }
