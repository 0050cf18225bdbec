/*
 * Entry point, descriptor tables and interrupt stubs of the Ferry test guest.
 * QEMU's multiboot loader (-kernel) enters _start in 32-bit protected mode,
 * paging off, EAX = 0x2BADB002, EBX = physical address of the multiboot info.
 */
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00000003      /* bit 0: page-align modules, bit 1: want mem_lower/upper */

    /* Must lie in the first 8 KiB of the file: the linker script puts it first. */
    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .section .text
    .global _start
_start:
    cli
    /* The loader's GDT is not ours to keep (it may live in RAM we reuse). */
    lgdt gdt_desc
    ljmp $0x08, $1f
1:  mov $0x10, %cx
    mov %cx, %ds
    mov %cx, %es
    mov %cx, %fs
    mov %cx, %gs
    mov %cx, %ss
    mov %eax, %esi                 /* keep magic and info pointer across the bss clear */
    mov %ebx, %ebp
    /* Zero .bss (QEMU zero-fills it too, but a warm reset would not). */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    cld
    rep stosb
    mov $stack_top, %esp
    push %ebp                      /* guest_main(magic, info) */
    push %esi
    call guest_main
2:  cli
    hlt
    jmp 2b

/* IRQ0 (PIT): save the caller-saved registers the C ABI may clobber. */
    .global irq_timer_stub
irq_timer_stub:
    pusha
    cld
    call timer_irq
    popa
    iret

/* Any other interrupt that somehow arrives (spurious IRQ7/15, unmasked by
 * nobody): ignore. Spurious IRQs must not be acknowledged with an EOI. */
    .global irq_ignore_stub
irq_ignore_stub:
    iret

/* CPU exceptions 0..31: report the vector and stop; the test is over. */
    .macro exc_stub n
    .global exc_stub_\n
exc_stub_\n:
    cli
    push $\n
    call guest_fault
    .endm
    .altmacro
    .set i, 0
    .rept 32
    exc_stub %i
    .set i, i + 1
    .endr

    .global exc_stub_table
    .section .rodata
    .align 4
exc_stub_table:
    .macro exc_ref n
    .long exc_stub_\n
    .endm
    .set i, 0
    .rept 32
    exc_ref %i
    .set i, i + 1
    .endr

    /* Flat 4 GiB code (0x08) and data (0x10) segments. */
    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
gdt_desc:
    .word gdt_desc - gdt - 1
    .long gdt

    .section .bss
    .align 16
    .space 16384
stack_top:

    .section .note.GNU-stack, "", @progbits
