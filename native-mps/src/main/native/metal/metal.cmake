# The metal backend: its own static archive (mps_metal) and JNI library (libmpsnative_metal.dylib), built on
# macOS where the Metal and MetalPerformanceShaders frameworks are found. Included by the main CMakeLists.txt
# inside if(APPLE), after MPS_COMMON_SOURCES, MPS_JNI_SOURCES, JNI_INCLUDE_DIRS, MPS_JNI_HEADERS,
# MPS_JNI_OUTPUT_DIR and Threads::Threads exist (docs/metal.md, "Building").
#
# Variables it reads: MPS_BUILD_JNI, MPS_BUILD_TESTS, MPS_TEST_DIR (from the main file) and MPS_BUILD_METAL
# (below). It sets MPS_METAL_BUILT (ON when the targets exist).
option(MPS_BUILD_METAL "Build the metal backend when the Metal frameworks are found (macOS)" ON)
set(MPS_METAL_BUILT OFF)

# The main file's CMAKE_CURRENT_SOURCE_DIR is the native/ directory; this file's own location is used instead,
# so the include works from any directory.
set(MPS_METAL_DIR "${CMAKE_CURRENT_LIST_DIR}")
get_filename_component(MPS_NATIVE_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

if(MPS_BUILD_METAL)
  find_library(MPS_METAL_FRAMEWORK Metal)
  find_library(MPS_MPS_FRAMEWORK MetalPerformanceShaders)
  if(NOT MPS_METAL_FRAMEWORK OR NOT MPS_MPS_FRAMEWORK)
    message(STATUS "mps-actors: metal backend SKIPPED: the Metal and MetalPerformanceShaders frameworks were not "
                   "found (install Xcode or the Command Line Tools)")
  else()
    set(MPS_METAL_BUILT ON)
    enable_language(OBJC)
    message(STATUS "mps-actors: metal backend enabled (${MPS_METAL_FRAMEWORK}, ${CMAKE_OBJC_COMPILER_ID} "
                   "${CMAKE_OBJC_COMPILER_VERSION})")

    # Metal compiles metal/kernels.metal at run time (newLibraryWithSource); embed its text as a C array.
    set(MPS_METAL_KERNELS "${MPS_METAL_DIR}/kernels.metal")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${MPS_METAL_KERNELS}")
    file(READ "${MPS_METAL_KERNELS}" MPS_METAL_KERNELS_HEX HEX)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," MPS_METAL_KERNELS_BYTES "${MPS_METAL_KERNELS_HEX}")
    file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/metal_kernels_source.c"
         "/* Generated from metal/kernels.metal by CMake. */\nconst char mps_metal_kernels_source[] = {${MPS_METAL_KERNELS_BYTES} 0x00};\n")

    # macOS 11 is the first release on Apple silicon and has every Metal API the backend uses
    # (MTLSharedEvent, GPUStartTime, MPSMatrix buffer offsets); a deployment target set by the caller wins.
    set(MPS_METAL_MIN_MACOS "")
    if(NOT CMAKE_OSX_DEPLOYMENT_TARGET)
      set(MPS_METAL_MIN_MACOS "-mmacosx-version-min=11.0")
    endif()
    set(MPS_METAL_FRAMEWORKS "-framework Metal" "-framework MetalPerformanceShaders" "-framework Foundation"
                             "-framework IOKit" "-framework CoreFoundation")

    file(GLOB MPS_METAL_SOURCES CONFIGURE_DEPENDS "${MPS_METAL_DIR}/*.m")
    add_library(mps_metal STATIC ${MPS_METAL_SOURCES} ${MPS_COMMON_SOURCES} "${MPS_NATIVE_DIR}/cpu/kernels_table.c"
                "${CMAKE_CURRENT_BINARY_DIR}/metal_kernels_source.c")
    # kernels_table.c contributes the signatures and encode-time validators only (the GPU executes).
    target_compile_definitions(mps_metal PRIVATE MPS_KERNEL_TABLE_VALIDATE_ONLY)
    # common/ includes "backend_objects.h": metal/ (and not cpu/) is on the path, so it finds this backend's.
    target_include_directories(mps_metal PUBLIC "${MPS_NATIVE_DIR}/include" "${MPS_NATIVE_DIR}"
                               PRIVATE "${MPS_METAL_DIR}")
    target_compile_options(mps_metal PRIVATE $<$<COMPILE_LANGUAGE:OBJC>:-fobjc-arc> ${MPS_METAL_MIN_MACOS})
    set_target_properties(mps_metal PROPERTIES OBJC_STANDARD 11 OBJC_VISIBILITY_PRESET hidden)
    target_link_libraries(mps_metal PUBLIC ${MPS_METAL_FRAMEWORKS} Threads::Threads)
    target_link_options(mps_metal INTERFACE ${MPS_METAL_MIN_MACOS})

    if(MPS_BUILD_JNI)
      add_library(mpsnative_metal SHARED ${MPS_JNI_SOURCES})
      target_include_directories(mpsnative_metal PRIVATE ${JNI_INCLUDE_DIRS} ${MPS_JNI_HEADERS})
      target_compile_options(mpsnative_metal PRIVATE ${MPS_METAL_MIN_MACOS})
      if(MPS_JNI_OUTPUT_DIR)
        set_target_properties(mpsnative_metal PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${MPS_JNI_OUTPUT_DIR}")
      endif()
      # Only system frameworks are linked, so nothing needs an rpath; the loader loads the file by path.
      target_link_libraries(mpsnative_metal PRIVATE mps_metal)
    endif()

    # The conformance test (C ABI only), plain and under Metal's API and shader validation (the analogue of
    # the cuda test under compute-sanitizer; MPS_TEST_LIGHT keeps the instrumented run short).
    if(MPS_BUILD_TESTS AND EXISTS "${MPS_TEST_DIR}/test_metal.mm")
      enable_language(OBJCXX)
      enable_testing()
      add_executable(test_metal "${MPS_TEST_DIR}/test_metal.mm")
      target_include_directories(test_metal PRIVATE "${MPS_TEST_DIR}")
      target_compile_options(test_metal PRIVATE -fobjc-arc ${MPS_METAL_MIN_MACOS})
      set_target_properties(test_metal PROPERTIES OBJCXX_STANDARD 17 OBJCXX_STANDARD_REQUIRED ON)
      target_link_libraries(test_metal PRIVATE mps_metal)
      add_test(NAME test_metal COMMAND test_metal)
      add_test(NAME test_metal_validation COMMAND test_metal)
      set_tests_properties(test_metal PROPERTIES TIMEOUT 300)
      set_tests_properties(test_metal_validation PROPERTIES TIMEOUT 600
        ENVIRONMENT "MTL_DEBUG_LAYER=1;MTL_SHADER_VALIDATION=1;MPS_TEST_LIGHT=1")
    endif()
  endif()
endif()
