# Finds every library pneumoseg uses, the standard way (find_package or
# pkg-config), and exposes each as an imported target:
#   DCMTK::DCMTK (+ DCMTK::dcmdata …), PNG::PNG, SQLite::SQLite3,
#   PkgConfig::YAML, PkgConfig::CMOCKA, OpenSSL::Crypto, pnx_blas, Threads::Threads
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(PNG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
find_package(DCMTK REQUIRED CONFIG)

# BLAS with the CBLAS interface: OpenBLAS preferred (threaded, fast), any
# CBLAS through the generic "blas" pkg-config module otherwise.
pkg_check_modules(OPENBLAS IMPORTED_TARGET openblas)
add_library(pnx_blas INTERFACE)
if(OPENBLAS_FOUND)
  target_link_libraries(pnx_blas INTERFACE PkgConfig::OPENBLAS)
  target_compile_definitions(pnx_blas INTERFACE PNX_HAVE_OPENBLAS=1)
else()
  pkg_check_modules(GENERIC_BLAS REQUIRED IMPORTED_TARGET blas)
  target_link_libraries(pnx_blas INTERFACE PkgConfig::GENERIC_BLAS)
endif()

find_library(M_LIBRARY m)
