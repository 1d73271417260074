dnl The suitex_events extension is Rust (ext-php-rs), built by cargo rather than the C
dnl toolchain: `phpize && ./configure && make && make install` — what PIE runs — calls cargo in
dnl the repository's workspace and installs the library it makes as suitex_events.so.
PHP_ARG_ENABLE([suitex_events],
  [whether to enable the SuiteX event backbone extension],
  [AS_HELP_STRING([--enable-suitex_events], [Enable suitex_events (default: yes)])],
  [yes], [no])

PHP_ARG_WITH([suitex-events-profile], [the cargo profile to build],
  [AS_HELP_STRING([--with-suitex-events-profile=PROFILE], [cargo profile: release (default) or debug])],
  [release], [no])

PHP_ARG_WITH([suitex-events-workspace], [the cargo workspace to build in],
  [AS_HELP_STRING([--with-suitex-events-workspace=DIR], [the repository checkout (default: the directory above this one)])],
  [no], [no])

if test "$PHP_SUITEX_EVENTS" != "no"; then
  AC_PATH_PROG([CARGO], [cargo], [no], [$PATH:$HOME/.cargo/bin])
  if test "$CARGO" = "no"; then
    AC_MSG_ERROR([cargo is required to build suitex_events: install Rust (https://rustup.rs), libclang and php-dev, then run configure again])
  fi
  if test "$PHP_SUITEX_EVENTS_WORKSPACE" != "no"; then
    SUITEX_WORKSPACE=`cd "$PHP_SUITEX_EVENTS_WORKSPACE" && pwd`
  else
    SUITEX_WORKSPACE=`cd "$abs_srcdir/.." && pwd`
  fi
  if test ! -f "$SUITEX_WORKSPACE/Cargo.toml"; then
    AC_MSG_ERROR([$SUITEX_WORKSPACE/Cargo.toml not found: build from the repository checkout (php-ext/ inside it)])
  fi
  case "$PHP_SUITEX_EVENTS_PROFILE" in
    release) SUITEX_CARGO_FLAGS="--release" ;;
    debug) SUITEX_CARGO_FLAGS="" ;;
    *) AC_MSG_ERROR([--with-suitex-events-profile must be release or debug, not $PHP_SUITEX_EVENTS_PROFILE]) ;;
  esac
  SUITEX_PROFILE="$PHP_SUITEX_EVENTS_PROFILE"
  dnl The extension is built for the PHP of the php-config this configure uses; cargo is told
  dnl only when that is not the one on PATH (ext-php-rs finds that one itself).
  SUITEX_ENV=""
  suitex_php_config=`command -v "$PHP_CONFIG"`
  if test "$suitex_php_config" != "`command -v php-config`"; then
    SUITEX_ENV="PHP_CONFIG=$suitex_php_config"
  fi
  PHP_SUBST(CARGO)
  PHP_SUBST(SUITEX_WORKSPACE)
  PHP_SUBST(SUITEX_CARGO_FLAGS)
  PHP_SUBST(SUITEX_PROFILE)
  PHP_SUBST(SUITEX_ENV)
  PHP_MODULES="\$(phplibdir)/suitex_events.so"
  PHP_ADD_MAKEFILE_FRAGMENT([$abs_srcdir/Makefile.frag], [$abs_srcdir], [$abs_builddir])
fi
